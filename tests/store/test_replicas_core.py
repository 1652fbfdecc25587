"""Two whole cores (two replicas' worth: store pool, queue, limits) on one PostgreSQL database.

Each replica is wired exactly as `codebot` wires it for CODEBOT_DB=postgresql://...: the follow-up
lands on the other replica, a redelivered event is answered once, and a workspace with concurrency 1
queues the second replica's question behind the first's, with its position.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from core.service import Codebot
from core.types import Author, CommandRequest, Incoming, NoticeReply, ThreadKey
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack, until
from tests.recording_sink import RecordingSink
from tests.store.backends import postgres_dsn, postgres_schema

ALICE = Author("U1", "alice")


def ask(text: str, thread: str, event: str) -> Incoming:
    return Incoming(ThreadKey("slack", "T1", "C1", thread), ALICE, text, event_id=event)


@asynccontextmanager
async def two_replicas(tmp_path: Path, llm_url: str, **env: str) -> AsyncIterator[tuple[Codebot, Codebot]]:
    async with (
        postgres_schema(postgres_dsn()) as dsn,
        core_stack(tmp_path / "a", llm_url, CODEBOT_DB=dsn, **env) as a,
        core_stack(tmp_path / "b", llm_url, CODEBOT_DB=dsn, **env) as b,
    ):
        yield a, b


async def test_a_follow_up_on_the_other_replica_continues_the_conversation(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake, two_replicas(tmp_path, fake.base_url) as (a, b):
        fake.enqueue_text("It is 42.")
        await a.submit(ask("what is six times seven", "t1", "e1"), RecordingSink())
        await a.wait_idle(30)
        fake.enqueue_text("Doubled, that is 84.")
        sink = RecordingSink()
        await b.submit(ask("and doubled?", "t1", "e2"), sink)
        await b.wait_idle(30)
    assert sink.answers == ["Doubled, that is 84."]
    shown = json.dumps(fake.agent_requests[-1]["messages"])
    assert "what is six times seven" in shown and "It is 42." in shown


async def test_deliveries_of_one_event_spread_over_replicas_are_answered_once(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake, two_replicas(tmp_path, fake.base_url) as (a, b):
        fake.default_text = "hello"
        sinks = [RecordingSink() for _ in range(4)]
        results = await asyncio.gather(
            *((a, b)[n % 2].submit(ask("hi", "t1", "same"), s) for n, s in enumerate(sinks))
        )
        await asyncio.gather(a.wait_idle(30), b.wait_idle(30))
    assert sorted(r.accepted for r in results) == [False, False, False, True]
    assert sum(len(s.answers) for s in sinks) == 1
    assert len(fake.agent_requests) == 1


async def test_a_busy_workspace_queues_the_other_replicas_question_with_its_position(tmp_path: Path) -> None:
    async with (
        FakeOpenAI() as fake,
        two_replicas(tmp_path, fake.base_url, CODEBOT_LIMIT_CONCURRENCY="1") as (a, b),
    ):
        fake.enqueue_delay(5.0)  # the first answer is slow: the second question arrives meanwhile
        fake.enqueue_text("first answer")
        fake.enqueue_text("second answer")
        first, second = RecordingSink(), RecordingSink()
        await a.submit(ask("slow one", "t1", "e1"), first)
        for _ in range(600):  # until replica A's turn holds the slot and waits on the model; bounded
            if fake.agent_requests:
                break
            await asyncio.sleep(0.05)
        await b.submit(ask("quick one", "t2", "e2"), second)
        queued = await second.wait_for(NoticeReply, timeout=30)
        assert not first.answers  # B was told its place while A still ran
        await asyncio.gather(a.wait_idle(60), b.wait_idle(60))
    assert isinstance(queued, NoticeReply) and "number 1 in the queue" in queued.text
    assert first.answers == ["first answer"] and second.answers == ["second answer"]


async def test_a_limit_set_on_the_other_replica_holds_for_the_very_next_question_here(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake, two_replicas(tmp_path, fake.base_url) as (a, b):
        fake.default_text = "hello"
        await a.submit(ask("first", "t1", "e1"), RecordingSink())  # replica A now keeps T1's limits
        await a.wait_idle(30)
        admin = Author("U9", "boss", is_admin=True)
        changed = await b.command(
            CommandRequest("slack", "T1", "C1", admin, "set", ("user_runs_per_hour", "1"))
        )
        assert changed.ok, changed.text
        sink = RecordingSink()
        assert (await a.submit(ask("second", "t2", "e2"), sink)).accepted
        await a.wait_idle(30)
    assert sink.answers == []  # alice had used her one run of this hour: A did not go by its old limits
    assert [r.kind for r in sink.replies if isinstance(r, NoticeReply)] == ["limit"]
    assert len(fake.agent_requests) == 1


async def test_a_question_that_waited_in_the_queue_reads_its_thread_again(tmp_path: Path) -> None:
    """The start reads the thread with its lock; a turn that then waits for a workspace slot reads it
    again when it runs, so a `reset` typed meanwhile is kept (the model never sees the old history)."""
    async with (
        FakeOpenAI() as fake,
        two_replicas(tmp_path, fake.base_url, CODEBOT_LIMIT_CONCURRENCY="1") as (a, b),
    ):
        fake.enqueue_text("Noted: banana.")
        await a.submit(ask("remember the word banana", "t2", "e0"), RecordingSink())
        await a.wait_idle(30)
        fake.enqueue_delay(5.0)  # t1's answer holds the workspace's one slot meanwhile
        fake.enqueue_text("slow answer")
        await a.submit(ask("slow one", "t1", "e1"), RecordingSink())
        await until(lambda: len(fake.agent_requests) == 2)
        fake.enqueue_text("I do not know the word.")
        waiting = RecordingSink()
        await a.submit(ask("which word did I say?", "t2", "e2"), waiting)
        await waiting.wait_for(NoticeReply, timeout=30)  # queued behind t1, its thread read at its start
        req = CommandRequest("slack", "T1", "C1", ALICE, "reset", (), ThreadKey("slack", "T1", "C1", "t2"))
        assert (await b.command(req)).ok
        await asyncio.gather(a.wait_idle(60), b.wait_idle(60))
    assert waiting.answers == ["I do not know the word."]
    assert "banana" not in json.dumps(fake.agent_requests[-1]["messages"])
