"""The orchestrator: real store, real openai SDK against a fake LLM server, a scripted runner for the sandbox.

A question answered by a real run is in tests/e2e/test_agent_runs.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.store.base import Workspace
from core.store.sqlite import SQLiteStore
from core.types import (
    Author,
    CommandRequest,
    Incoming,
    ThreadKey,
)
from tests.fake_runner import FakeRunner, raised, ran
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.recording_sink import RecordingSink

ALICE = Author("U1", "alice")


def ask(text: str, thread: str = "t1", event: str | None = None, author: Author = ALICE) -> Incoming:
    key = ThreadKey("slack", "T1", "C1", thread)
    return Incoming(key, author, text, event_id=event or f"ev-{thread}-{text[:20]}")


def stack(tmp_path: Path, llm_url: str, runner: FakeRunner | None = None, **settings: str):
    """A core whose sandbox is a scripted runner (a clean run with no output unless told otherwise)."""
    return core_stack(tmp_path, llm_url, runner=runner or FakeRunner(), **settings)


def transcript(fake: FakeOpenAI, index: int = -1) -> str:
    """All message text of one agent request, for asserting what the model was shown."""
    return json.dumps(fake.agent_requests[index]["messages"])


async def test_follow_up_after_restart_sends_earlier_turns_to_the_model(tmp_path):
    async with FakeOpenAI() as fake:
        async with stack(tmp_path, fake.base_url) as core:
            fake.enqueue_tool_call("result = 6 * 7")
            fake.enqueue_text("It is 42.")
            await core.submit(ask("what is six times seven", event="e1"), RecordingSink())
            await core.wait_idle(30)
        async with stack(tmp_path, fake.base_url) as core:  # a new process, same database
            fake.enqueue_text("Doubled, that is 84.")
            sink = RecordingSink()
            await core.submit(ask("and doubled?", event="e2"), sink)
            await core.wait_idle(30)
    assert sink.answers == ["Doubled, that is 84."]
    shown = transcript(fake)
    assert "what is six times seven" in shown and "It is 42." in shown and "and doubled?" in shown


async def test_a_redelivered_event_runs_once(tmp_path):
    async with FakeOpenAI() as fake, stack(tmp_path, fake.base_url) as core:
        fake.default_text = "hello"
        sinks = [RecordingSink() for _ in range(4)]
        results = await asyncio.gather(*(core.submit(ask("hi", event="same"), s) for s in sinks))
        await core.wait_idle(30)
    assert sorted(r.accepted for r in results) == [False, False, False, True]
    assert {r.reason for r in results if not r.accepted} == {"duplicate"}
    assert sum(len(s.answers) for s in sinks) == 1
    assert len(fake.agent_requests) == 1


async def test_empty_and_oversized_questions_get_a_clear_reply_and_no_llm_call(tmp_path):
    async with (
        FakeOpenAI() as fake,
        stack(tmp_path, fake.base_url, CODEBOT_MAX_QUESTION_CHARS="100") as core,
    ):
        empty, big = RecordingSink(), RecordingSink()
        assert (await core.submit(ask("   ", event="e1"), empty)).reason == "empty"
        assert (await core.submit(ask("x" * 5000, event="e2"), big)).reason == "too-long"
        await core.wait_idle(10)
    assert "Ask me something" in empty.notices[0].text
    assert "5,000 characters" in big.notices[0].text and "100" in big.notices[0].text
    assert fake.agent_requests == []


async def test_two_threads_run_concurrently_and_each_gets_its_own_answer(tmp_path):
    async with FakeOpenAI() as fake, stack(tmp_path, fake.base_url) as core:
        fake.latency = (0.4, 0.4)
        fake.default_text = "answer"
        a, b = RecordingSink(), RecordingSink()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await core.submit(ask("first", thread="ta"), a)
        await core.submit(ask("second", thread="tb"), b)
        await core.wait_idle(30)
        elapsed = loop.time() - start
    assert a.answers == ["answer"] and b.answers == ["answer"]
    assert elapsed < 0.75, f"threads were serialised ({elapsed:.2f}s for two 0.4s calls)"


async def test_each_execution_is_audited_with_code_verdict_and_outcome(tmp_path):
    runner = FakeRunner()
    runner.enqueue(
        raised("Traceback (most recent call last):\nZeroDivisionError: division by zero"), ran(result="1")
    )
    async with FakeOpenAI() as fake, stack(tmp_path, fake.base_url, runner) as core:
        fake.enqueue_tool_call("1/0")
        fake.enqueue_tool_call("result = 1")
        fake.enqueue_text("fixed")
        await core.submit(ask("divide"), RecordingSink())
        await core.wait_idle(30)
    store = SQLiteStore(tmp_path / "codebot.db")
    await store.open()
    try:
        records = await store.audit(Workspace("slack", "T1"))
        usage = await store.usage(Workspace("slack", "T1"), since=0)
    finally:
        await store.close()
    assert [(r.code, r.outcome, r.user_id) for r in reversed(records)] == [
        ("1/0", "error", "U1"),
        ("result = 1", "ok", "U1"),
    ]
    assert all(r.allowed for r in records)
    assert usage.runs == 2


async def test_llm_unreachable_ends_the_turn_with_a_message_and_keeps_serving(tmp_path):
    async with FakeOpenAI() as fake, stack(tmp_path, "http://127.0.0.1:9/v1") as core:
        sink = RecordingSink()
        await core.submit(ask("anything"), sink)
        await core.wait_idle(60)
    assert sink.notices and "could not be reached" in sink.notices[-1].text.lower()
    assert sink.answers == []
    del fake


async def test_shutdown_abandons_a_slow_turn_and_tells_the_thread(tmp_path):
    async with FakeOpenAI() as fake, stack(tmp_path, fake.base_url) as core:
        fake.latency = (5, 5)
        sink = RecordingSink()
        await core.submit(ask("slow one"), sink)
        await asyncio.sleep(0.3)
        await core.shutdown(grace_s=0.2)
        refused = RecordingSink()
        late = await core.submit(ask("too late", event="late"), refused)
    assert [n.kind for n in sink.notices] == ["abandoned"]
    assert not late.accepted and late.reason == "shutting-down"
    store = SQLiteStore(tmp_path / "codebot.db")
    await store.open()
    try:
        assert await store.unfinished_turns() == []  # recorded as abandoned, not left dangling
    finally:
        await store.close()


@pytest.mark.parametrize("admin", [True, False])
async def test_commands_resolve_admins_from_settings(tmp_path, admin):
    async with FakeOpenAI() as fake, stack(tmp_path, fake.base_url, CODEBOT_ADMIN_IDS="UADMIN") as core:
        who = Author("UADMIN" if admin else "U2", "someone")
        req = CommandRequest("slack", "T1", "C1", who, "set", ("timeout", "5"))
        result = await core.command(req)
    assert result.ok is admin
    assert ("timeout" in result.text) if admin else ("admin" in result.text.lower())


async def test_an_unreadable_history_row_does_not_break_the_thread(tmp_path):
    import sqlite3

    async with FakeOpenAI() as fake:
        async with stack(tmp_path, fake.base_url) as core:
            fake.enqueue_text("first answer")
            await core.submit(ask("first question", event="e1"), RecordingSink())
            await core.wait_idle(30)
        with sqlite3.connect(tmp_path / "codebot.db") as db:  # damage the newest row (the answer)
            db.execute("UPDATE messages SET body = 'not json' WHERE seq = (SELECT MAX(seq) FROM messages)")
        async with stack(tmp_path, fake.base_url) as core:
            fake.enqueue_text("second answer")
            sink = RecordingSink()
            await core.submit(ask("second question", event="e2"), sink)
            await core.wait_idle(30)
    assert sink.answers == ["second answer"]
    assert "first question" in transcript(fake)


async def test_a_question_waiting_for_the_bots_global_cap_is_shown_as_queued(tmp_path):
    from core.types import Progress

    async with (
        FakeOpenAI() as fake,
        stack(tmp_path, fake.base_url, CODEBOT_MAX_CONCURRENT_TURNS="1") as core,
    ):
        fake.latency = (0.5, 0.5)
        fake.default_text = "ok"
        first, second = RecordingSink(), RecordingSink()
        await core.submit(ask("one", thread="g1"), first)
        await asyncio.sleep(0.1)
        await core.submit(ask("two", thread="g2", author=Author("U9", "bob")), second)
        await core.wait_idle(30)
    assert Progress.QUEUED not in first.progress_states
    assert second.progress_states[0] is Progress.QUEUED and second.answers == ["ok"]
