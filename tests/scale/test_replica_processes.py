"""Real `codebot slack --http` replicas on one PostgreSQL database: SIGKILL, SIGSTOP, redeliveries.

Every wait is for an event (a post in the fake Slack, a request held by the fake LLM, a log line),
with timeouts of many leases, so a loaded machine makes the tests slower, never flaky.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from tests.fakes.slack_fake import FakeSlack
from tests.scale.holding_llm import HoldingOpenAI
from tests.scale.leased_replicas import (
    INTERRUPTED,
    LEASE_S,
    WAIT_S,
    ask_and_wait,
    replicas,
    texts,
    wait_for_log,
)
from tests.slack.payloads import mention, message


async def test_sigkill_mid_turn_the_survivor_tells_the_thread_and_the_thread_goes_on(
    tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, pg: str, http: aiohttp.ClientSession
) -> None:
    root = "1700000400.000100"
    async with replicas(2, tmp_path, slack, llm, pg) as (a, b):
        llm.enqueue_text("Noted: 7.")
        await ask_and_wait(a, http, slack, mention("remember 7", ts=root), root, "Noted: 7.")
        llm.hold("plot the sales")
        assert await a.send(http, message("plot the sales", thread_ts=root)) == 200
        await llm.reached("plot the sales", WAIT_S)
        await a.kill()  # SIGKILL: no shutdown, no abandon, the lease just stops being renewed
        killed = time.monotonic()
        notice = await slack.wait_for(
            lambda: next((t for t in texts(slack, root) if INTERRUPTED in t), None), WAIT_S
        )
        told_after = time.monotonic() - killed
        llm.enqueue_text("It was 7.")
        await ask_and_wait(b, http, slack, message("what was it?", thread_ts=root), root, "It was 7.")
    assert "plot the sales" in notice
    assert [t for t in texts(slack, root) if INTERRUPTED in t] == [notice]  # told once
    assert "remember 7" in str(llm.agent_requests[-1]["messages"])  # the history survived the kill
    print(f"the survivor told the thread {told_after:.1f} s after the SIGKILL (lease {LEASE_S:g} s)")


async def test_a_paused_replica_whose_turn_was_taken_over_never_answers_it(
    tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, pg: str, http: aiohttp.ClientSession
) -> None:
    root = "1700000401.000100"
    llm.default_text = "the late answer"
    async with replicas(2, tmp_path, slack, llm, pg) as (a, b):
        llm.hold("a slow sum")
        assert await a.send(http, mention("a slow sum", ts=root)) == 200
        await llm.reached("a slow sum", WAIT_S)
        a.proc.send_signal(signal.SIGSTOP)  # paused, not dead: its lease runs out while it sleeps
        try:
            await slack.wait_for(lambda: any(INTERRUPTED in t for t in texts(slack, root)), WAIT_S)
            llm.release("a slow sum")  # the model's answer is waiting for A when it wakes up
        finally:
            a.proc.send_signal(signal.SIGCONT)
        await wait_for_log(a, lambda line: "without answering" in line or "its lease is gone" in line)
        llm.enqueue_text("Next one.")  # a later turn in the thread runs after A's turn let go of it
        # A mention: the thread has no history yet (its only turn was interrupted).
        follow_up = mention("next question", thread_ts=root)
        await ask_and_wait(b, http, slack, follow_up, root, "Next one.")
    assert "the late answer" not in texts(slack, root)
    assert sum(INTERRUPTED in t for t in texts(slack, root)) == 1


async def test_one_event_delivered_to_both_replicas_is_answered_once(
    tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, pg: str, http: aiohttp.ClientSession
) -> None:
    root = "1700000402.000100"
    body = mention("say hello", ts=root)
    llm.enqueue_text("hello!")
    async with replicas(2, tmp_path, slack, llm, pg) as bots:
        statuses = await asyncio.gather(*(bots[n % 2].send(http, body) for n in range(4)))
        await slack.wait_for(lambda: "hello!" in texts(slack, root), WAIT_S)
        llm.enqueue_text("again!")  # the thread runs one turn at a time: this comes after any other
        await ask_and_wait(bots[1], http, slack, message("once more", thread_ts=root), root, "again!")
    assert statuses == [200] * 4
    assert texts(slack, root).count("hello!") == 1
    asked = [r for r in llm.agent_requests if "say hello" in str(r["messages"][-1])]
    assert len(asked) == 1


async def test_a_follow_up_on_replica_b_waits_for_replica_a_and_is_answered_once(
    tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, pg: str, http: aiohttp.ClientSession
) -> None:
    root = "1700000403.000100"
    async with replicas(2, tmp_path, slack, llm, pg) as (a, b):
        llm.hold("the first part")
        llm.enqueue_text("First: 42.")
        llm.enqueue_text("Second: 84.")
        assert await a.send(http, mention("the first part", ts=root)) == 200
        await llm.reached("the first part", WAIT_S)
        assert await b.send(http, message("the second part", thread_ts=root)) == 200
        await wait_for_log(b, lambda line: "turn started" in line)  # B has it, and must wait for A
        llm.release("the first part")
        await slack.wait_for(lambda: "Second: 84." in texts(slack, root), WAIT_S)
    said = texts(slack, root)
    assert said.count("First: 42.") == 1 and said.count("Second: 84.") == 1
    assert said.index("First: 42.") < said.index("Second: 84.")
    second = str(llm.agent_requests[-1]["messages"])
    assert "the first part" in second and "First: 42." in second  # B ran with A's history
