"""Two whole cores (two replicas' worth) on one PostgreSQL database: turn leases and thread locks.

Each core is wired as `codebot` wires it for CODEBOT_DB=postgresql://..., in this process; the tests
with real processes and SIGKILL are in test_replica_processes.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from core.service import Codebot
from core.types import Author, Incoming, NoticeReply, ThreadKey
from tests.harness import core_stack
from tests.recording_sink import RecordingSink
from tests.scale.holding_llm import HoldingOpenAI

ALICE = Author("U1", "alice")


def ask(text: str, thread: str, event: str) -> Incoming:
    return Incoming(ThreadKey("slack", "T1", "C1", thread), ALICE, text, event_id=event)


@asynccontextmanager
async def replica(tmp_path: Path, llm: HoldingOpenAI, dsn: str, name: str) -> AsyncIterator[Codebot]:
    async with core_stack(tmp_path / name, llm.base_url, CODEBOT_DB=dsn, CODEBOT_TURN_LEASE_S="30") as core:
        yield core


async def test_a_starting_replica_leaves_the_running_turns_of_others_alone(
    tmp_path: Path, llm: HoldingOpenAI, pg: str
) -> None:
    llm.hold("slow question")
    llm.enqueue_text("the slow answer")
    first = RecordingSink()
    async with replica(tmp_path, llm, pg, "a") as a:
        await a.submit(ask("a slow question", "t1", "e1"), first)
        await llm.reached("slow question")
        told = RecordingSink()
        async with replica(tmp_path, llm, pg, "b") as b:
            assert await b.recover(lambda _key: told) == 0  # A is alive: its turn is not B's to report
            llm.release("slow question")
            await a.wait_idle(60)
    assert told.replies == []
    assert first.answers == ["the slow answer"]
    assert not first.notices


async def test_a_follow_up_on_the_other_replica_waits_for_the_thread_and_sees_its_history(
    tmp_path: Path, llm: HoldingOpenAI, pg: str
) -> None:
    llm.hold("first question")
    llm.enqueue_text("The first answer is 42.")
    llm.enqueue_text("Doubled, 84.")
    first, second = RecordingSink(), RecordingSink()
    async with replica(tmp_path, llm, pg, "a") as a, replica(tmp_path, llm, pg, "b") as b:
        await a.submit(ask("first question", "t1", "e1"), first)
        await llm.reached("first question")
        await b.submit(ask("and doubled?", "t1", "e2"), second)  # arrives while A runs the thread
        llm.release("first question")
        await a.wait_idle(60)
        await b.wait_idle(60)
    assert first.answers == ["The first answer is 42."] and second.answers == ["Doubled, 84."]
    # B's model call came after A's turn committed: it saw A's question and answer.
    assert len(llm.agent_requests) == 2
    shown = json.dumps(llm.agent_requests[1]["messages"])
    assert "first question" in shown and "The first answer is 42." in shown
    assert not [n for n in second.notices if isinstance(n, NoticeReply)]
