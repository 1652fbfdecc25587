"""Two real `codebot slack --http` replicas on one PostgreSQL database behind a real HAProxy.

HAProxy runs deploy/haproxy.cfg (only its bind and server lines replaced), round robin with its
health check on each replica's /readyz. Slack's deliveries of one event (the first send and its
X-Slack-Retry-Num retries) land on both replicas: each is acked at once, the question is answered
once; follow-ups in the thread are answered by whichever replica gets them, with the history.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.ops.conftest import sample_value
from tests.ops.process import free_port
from tests.reliability.bot_process import bot_environ
from tests.scale.replicas import (
    DEPLOY_HAPROXY,
    Proc,
    haproxy_binary,
    haproxy_config,
    post_event,
    start_haproxy,
    start_slack_replica,
    wait_servers_up,
)
from tests.slack.payloads import mention, message
from tests.store.backends import postgres_dsn, postgres_schema

SLACK_ACK_S = 3.0  # Slack's own deadline: a slower ack is a failed delivery that Slack retries
ROOT = "1700000500.000100"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
    assert not fake.refused, fake.refused


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def procs() -> AsyncIterator[list[Proc]]:
    """Every process the test starts; killed with their process groups whatever happens."""
    started: list[Proc] = []
    yield started
    for p in started:
        await p.kill()


def answers(slack: FakeSlack, text: str) -> list[str]:
    """Everything the bot said in the test thread (posts and edits) that contains `text`."""
    said = slack.calls_to("chat.postMessage") + slack.calls_to("chat.update")
    return [str(c.params.get("text")) for c in said if text in str(c.params.get("text"))]


async def claims(http: aiohttp.ClientSession, replicas: list[Proc]) -> float:
    """How many deliveries the replicas have checked against the database's de-duplication."""
    total = 0.0
    for r in replicas:
        async with http.get(f"http://127.0.0.1:{r.ports['ops']}/metrics") as resp:
            total += sample_value(await resp.text(), "codebot_store_seconds_count", {"op": "claim_event"})
    return total


async def test_retries_spread_by_haproxy_are_answered_once_and_follow_ups_go_anywhere(
    tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI, procs: list[Proc]
) -> None:
    binary = haproxy_binary()
    async with postgres_schema(postgres_dsn()) as dsn, aiohttp.ClientSession() as http:
        replicas = []
        for name in ("a", "b"):  # one after the other: the first one migrates the fresh schema
            (tmp_path / name).mkdir()
            env = bot_environ(tmp_path / name, slack.base_url, llm.base_url, CODEBOT_DB=dsn)
            replicas.append(await start_slack_replica(env, tmp_path / name))
            procs.append(replicas[-1])
        servers = [("codebot1", replicas[0].ports["events"], replicas[0].ports["ops"]),
                   ("codebot2", replicas[1].ports["events"], replicas[1].ports["ops"])]  # fmt: skip
        stats, port = tmp_path / "haproxy.sock", free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config(DEPLOY_HAPROXY.read_text(), port, servers, stats))
        proxy = await start_haproxy(binary, config, tmp_path)
        procs.append(proxy)
        await wait_servers_up(proxy, stats, ["codebot1", "codebot2"], timeout_s=60)
        url = f"http://127.0.0.1:{port}/slack/events"

        llm.enqueue_text("Six times seven is 42.")
        first = mention("what is six times seven", ts=ROOT, event_id="EvHA1")
        deliveries = [await post_event(http, url, first, retry=n) for n in range(4)]
        assert [status for status, _, _ in deliveries] == [200] * 4, proxy.text()
        assert {server for _, server, _ in deliveries} == {"codebot1", "codebot2"}
        assert max(seconds for _, _, seconds in deliveries) < SLACK_ACK_S
        await slack.wait_for(lambda: answers(slack, "42"), timeout_s=60)
        # Every delivery has been checked against the database before the answers are counted.
        async with asyncio.timeout(60):
            while True:  # a replica's metrics cannot notify us: poll them
                if await claims(http, replicas) >= 4:
                    break
                await asyncio.sleep(0.05)

        served = []
        for text, reply in (("and doubled", "Doubled, that is 84."), ("and tripled", "Tripled, 126.")):
            llm.enqueue_text(reply)
            status, server, seconds = await post_event(http, url, message(text, thread_ts=ROOT))
            assert status == 200 and seconds < SLACK_ACK_S
            served.append(server)
            await slack.wait_for(lambda reply=reply: answers(slack, reply), timeout_s=60)
            shown = json.dumps(llm.agent_requests[-1]["messages"])
            assert "what is six times seven" in shown and "Six times seven is 42." in shown
        assert sorted(served) == ["codebot1", "codebot2"]  # each replica answered one follow-up

    assert len(answers(slack, "Six times seven is 42.")) == 1  # the final edit, once
    assert len(llm.agent_requests) == 3  # the question once, each follow-up once
    assert len(slack.reactions("eyes")) == 3
