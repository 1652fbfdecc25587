"""PostgreSQL restarted under load, under two real replicas: clear messages while it is down, and once
it is back nothing lost and nothing answered twice. On a cluster of the test's own (private_pg)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import asyncpg

from tests.fakes.slack_fake import FakeSlack
from tests.scale.holding_llm import HoldingOpenAI
from tests.scale.leased_replicas import WAIT_S, replicas, texts
from tests.scale.private_pg import private_cluster
from tests.slack.payloads import mention

ANSWER = "Computed: 42."
THREADS = 8


async def committed(dsn: str, n: int) -> None:
    """Wait until n turns are committed (polling the database: no event reaches the test for it)."""
    db = await asyncpg.connect(dsn, timeout=30)
    try:
        async with asyncio.timeout(WAIT_S):
            while await db.fetchval("SELECT count(*) FROM turns WHERE state = 'committed'") < n:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await db.close()


async def ask_all(bots, http, roots: list[str], text: str, thread_ts: bool = False) -> None:
    bodies = [
        mention(f"{text} {i}", ts=None if thread_ts else root, thread_ts=root if thread_ts else None)
        for i, root in enumerate(roots)
    ]
    statuses = await asyncio.gather(*(bots[i % len(bots)].send(http, b) for i, b in enumerate(bodies)))
    assert statuses == [200] * len(roots)


async def test_postgres_restarted_under_load_loses_nothing_and_answers_nothing_twice(
    tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, http: aiohttp.ClientSession
) -> None:
    llm.default_text = ANSWER
    llm.latency = (0.05, 0.3)
    before = [f"17000005{i:02d}.000100" for i in range(THREADS)]
    during = [f"17000006{i:02d}.000100" for i in range(4)]
    after = [f"17000007{i:02d}.000100" for i in range(THREADS)]
    async with private_cluster() as pg, replicas(2, tmp_path, slack, llm, pg.dsn) as bots:
        await ask_all(bots, http, before, "remember the number")
        await slack.wait_for(lambda: all(ANSWER in texts(slack, r) for r in before), WAIT_S)
        await committed(pg.dsn, THREADS)  # an answer is posted just before its turn commits

        await pg.stop()
        await ask_all(bots, http, during, "while the database is down")
        await slack.wait_for(
            lambda: all(any("Storage problem" in t for t in texts(slack, r)) for r in during), WAIT_S
        )
        await pg.start()

        await ask_all(bots, http, after, "after the restart")
        await ask_all(bots, http, before, "what was the number?", thread_ts=True)  # follow-ups
        await slack.wait_for(lambda: all(ANSWER in texts(slack, r) for r in after), WAIT_S)
        await slack.wait_for(lambda: all(texts(slack, r).count(ANSWER) == 2 for r in before), WAIT_S)
    for root in during:
        said = texts(slack, root)
        notices = [t for t in said if "Storage problem" in t]
        assert len(notices) == 1 and ANSWER not in said, said
        assert "PostgreSQL" in notices[0] and "Traceback" not in notices[0]  # says what is wrong
    assert all(texts(slack, r).count(ANSWER) == 1 for r in after)
    assert all(texts(slack, r).count(ANSWER) == 2 for r in before)  # never a third
    follow_ups = [r for r in llm.agent_requests if "what was the number?" in str(r["messages"][-1])]
    assert len(follow_ups) == THREADS
    assert all("remember the number" in str(r["messages"]) for r in follow_ups)  # history survived
