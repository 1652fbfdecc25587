"""Storage faults under the whole core: a locked file and one thread's failing writes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from core.store.sqlite import SQLiteStore
from core.types import Author, Incoming, ThreadKey
from tests.core.conftest import chat_is_consistent
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.recording_sink import RecordingSink
from tests.store.processes import write_lock_held_elsewhere

GOOD = ThreadKey("slack", "T1", "C1", "good")
BAD = ThreadKey("slack", "T1", "C1", "bad")

# Fails every history write of the "bad" thread, as a damaged page or a full quota would for one row.
FAIL_BAD_THREAD = """
CREATE TRIGGER fail_bad BEFORE INSERT ON messages
WHEN (SELECT thread FROM conversations WHERE id = NEW.conversation_id) = 'bad'
BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END
"""


def ask(key: ThreadKey, text: str, event: str) -> Incoming:
    return Incoming(key, Author("U1", "alice"), text, event_id=event)


def _sql(db: Path, statement: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement)


async def _history(db: Path, key: ThreadKey) -> list[str]:
    store = SQLiteStore(db)
    await store.open()
    try:
        return await store.load_messages(key, 100)
    finally:
        await store.close()


async def test_one_threads_failing_write_is_reported_and_other_threads_are_served(tmp_path):
    db = tmp_path / "codebot.db"
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_text("bad thread remembers 1")
        await core.submit(ask(BAD, "remember 1", "e0"), RecordingSink())
        await core.wait_idle(30)
        await asyncio.to_thread(_sql, db, FAIL_BAD_THREAD)
        fake.latency = (0.2, 0.2)
        fake.default_text = "answer"
        bad, good = RecordingSink(), RecordingSink()
        await core.submit(ask(BAD, "remember 2", "e1"), bad)
        await core.submit(ask(GOOD, "hello", "e2"), good)
        await core.wait_idle(30)
        history_during = await _history(db, BAD)
        await asyncio.to_thread(_sql, db, "DROP TRIGGER fail_bad")
        fake.enqueue_text("you said 1")
        again = RecordingSink()
        await core.submit(ask(BAD, "what did I say?", "e3"), again)
        await core.wait_idle(30)
        store = SQLiteStore(db)
        await store.open()
        unfinished = await store.unfinished_turns()
        await store.close()
    assert good.answers == ["answer"] and good.notices == []
    assert bad.answers == ["answer"]  # shown before the write failed ...
    [notice] = bad.notices  # ... and the user is told it will not be remembered
    assert notice.kind == "error" and "Storage problem" in notice.text and "simulated" in notice.text
    assert len(history_during) == 2  # the failed turn left no half of itself behind
    assert again.answers == ["you said 1"]
    follow_up = fake.agent_requests[-1]["messages"]
    assert chat_is_consistent(follow_up) and "remember 1" in json.dumps(follow_up)
    assert unfinished == []  # the failed turn is closed, so no restart will report it as interrupted


async def test_a_locked_database_gives_a_clear_notice_and_the_retry_is_answered(tmp_path):
    db = tmp_path / "codebot.db"
    async with (
        FakeOpenAI() as fake,
        core_stack(tmp_path, fake.base_url, CODEBOT_DB_BUSY_TIMEOUT_S="0.5") as core,
    ):
        fake.enqueue_text("first")
        await core.submit(ask(GOOD, "first", "e1"), RecordingSink())
        await core.wait_idle(30)
        locked = RecordingSink()
        async with write_lock_held_elsewhere(db):
            refused = await core.submit(ask(GOOD, "second", "e2"), locked)
        fake.enqueue_text("second answer")
        retried = RecordingSink()
        again = await core.submit(ask(GOOD, "second", "e2"), retried)  # Slack's redelivery, same id
        await core.wait_idle(30)
    assert not refused.accepted and refused.reason == "store-error"
    [notice] = locked.notices
    assert "locked by another process" in notice.text and "try again" in notice.text
    assert again.accepted and retried.answers == ["second answer"]
    assert "first" in json.dumps(fake.agent_requests[-1]["messages"])
