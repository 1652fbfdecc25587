"""Real `codebot slack --http` replicas on one PostgreSQL database: SIGKILL, SIGSTOP, redeliveries.

Every wait is for an event (a post in the fake Slack, a request held by the fake LLM, a log line),
with timeouts of many leases, so a loaded machine makes the tests slower, never flaky.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp

from tests.fakes.slack_fake import FakeSlack
from tests.reliability.bot_process import BotProcess, bot_environ, start_bot
from tests.scale.holding_llm import HoldingOpenAI
from tests.slack.payloads import mention, message

LEASE_S = 6.0  # short, so a dead replica's turn is reported within seconds; renewed every 1.5 s
WAIT_S = 90.0  # generous: many leases, for a loaded machine
INTERRUPTED = "restarted while answering"


@asynccontextmanager
async def replicas(
    n: int, tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, dsn: str
) -> AsyncIterator[list[BotProcess]]:
    env = bot_environ(
        tmp_path, slack.base_url, llm.base_url, CODEBOT_DB=dsn, CODEBOT_TURN_LEASE_S=str(LEASE_S)
    )
    async with AsyncExitStack() as stack:
        bots = []
        for i in range(n):
            cwd = tmp_path / f"replica{i}"
            cwd.mkdir()
            bot = await start_bot(env, cwd, timeout_s=60)
            stack.push_async_callback(bot.kill)
            bots.append(bot)
        yield bots


def texts(slack: FakeSlack, root: str) -> list[str]:
    return [c.params["text"] for c in slack.thread_posts("C1", root)]


async def ask_and_wait(
    bot: BotProcess, http: aiohttp.ClientSession, slack: FakeSlack, body: dict, root: str, answer: str
) -> None:
    assert await bot.send(http, body) == 200
    await slack.wait_for(lambda: answer in texts(slack, root), timeout_s=WAIT_S)


async def wait_for_log(bot: BotProcess, pred: Callable[[str], bool], timeout_s: float = WAIT_S) -> str:
    """Wait until the bot's stderr has a line matching `pred` (the log is drained as it is written)."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = next((line for line in bot.log if pred(line)), None)
            if found is not None:
                return found
            await asyncio.sleep(0.05)  # the drain task appends lines; nothing to await on directly


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
