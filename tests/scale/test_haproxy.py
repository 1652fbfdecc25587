"""Two real `codebot slack --http` replicas on one PostgreSQL database behind a real HAProxy.

HAProxy runs deploy/haproxy.cfg (only its bind and server lines replaced), round robin with its
health check on each replica's /readyz. Slack's deliveries of one event (the first send and its
X-Slack-Retry-Num retries) land on both replicas: each is acked at once, the question is answered
once; follow-ups in the thread are answered by whichever replica gets them, with the history.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.ops.conftest import sample_value
from tests.reliability.bot_process import bot_environ
from tests.scale.replicas import (
    DEPLOY_HAPROXY,
    Proc,
    admin,
    haproxy_binary,
    post_event,
    serve_haproxy,
    server_stats,
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
            text = await resp.text()
            for op in ("begin_turn", "claim_event"):  # a question's first call claims it
                total += sample_value(text, "codebot_store_seconds_count", {"op": op})
    return total


@dataclass
class Cluster:
    replicas: list[Proc]
    proxy: Proc
    stats: Path  # HAProxy's admin socket
    url: str  # the events URL through HAProxy


@asynccontextmanager
async def cluster(
    tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI, procs: list[Proc], **env: str
) -> AsyncIterator[Cluster]:
    """Two replicas on a fresh PostgreSQL schema behind HAProxy running deploy/haproxy.cfg."""
    binary = haproxy_binary()
    async with postgres_schema(postgres_dsn()) as dsn:
        replicas = []
        for name in ("a", "b"):  # one after the other: the first one migrates the fresh schema
            (tmp_path / name).mkdir()
            environ = bot_environ(tmp_path / name, slack.base_url, llm.base_url, CODEBOT_DB=dsn, **env)
            replicas.append(await start_slack_replica(environ, tmp_path / name))
            procs.append(replicas[-1])
        servers = [(f"codebot{n}", r.ports["events"], r.ports["ops"]) for n, r in enumerate(replicas, 1)]
        proxy, port = await serve_haproxy(binary, servers, tmp_path)
        procs.append(proxy)
        stats = tmp_path / "haproxy.sock"
        await wait_servers_up(proxy, stats, [name for name, _, _ in servers], timeout_s=60)
        try:
            yield Cluster(replicas, proxy, stats, f"http://127.0.0.1:{port}/slack/events")
        finally:
            for p in procs:  # before the schema is dropped: no replica may still hold it
                await p.kill()


async def test_retries_spread_by_haproxy_are_answered_once_and_follow_ups_go_anywhere(
    tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI, procs: list[Proc]
) -> None:
    async with cluster(tmp_path, slack, llm, procs) as c, aiohttp.ClientSession() as http:
        replicas, proxy, url = c.replicas, c.proxy, c.url
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


async def test_a_stopping_replica_refuses_with_503_and_haproxy_sends_the_event_to_the_other(
    tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI, procs: list[Proc]
) -> None:
    async with (
        cluster(tmp_path, slack, llm, procs, CODEBOT_SHUTDOWN_GRACE_S="120") as c,
        aiohttp.ClientSession() as http,
    ):
        stopping = c.replicas[0]
        # HAProxy would mark the draining replica down after two failed checks; keep it "up", so that
        # round robin still gives it a request, it answers 503, and HAProxy's retry delivers it.
        await admin(c.stats, "disable health codebot/codebot1")
        llm.enqueue_delay(120)  # replica A answers slowly: SIGTERM leaves it draining, not gone
        llm.enqueue_text("never needed")
        slow = mention("something slow", ts="1700000600.000100")
        direct = f"http://127.0.0.1:{stopping.ports['events']}"
        assert (await post_event(http, direct + "/slack/events", slow))[0] == 200
        await llm.wait_for_requests(1, timeout=60)
        stopping.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            while True:  # until A handles the signal: its events port then answers 503
                async with http.get(direct + "/healthz") as resp:
                    if resp.status == 503:
                        break
                await asyncio.sleep(0.05)

        served = []
        for n in range(2):  # round robin sends one of the two to the stopping replica
            llm.enqueue_text(f"Answer {n}.")
            body = mention(f"question {n}", ts=f"1700000601.00010{n}")
            status, server, seconds = await post_event(http, c.url, body)
            assert status == 200 and seconds < SLACK_ACK_S, c.proxy.text()
            served.append(server)
            await slack.wait_for(lambda n=n: answers(slack, f"Answer {n}."), timeout_s=60)
        rows = await server_stats(c.stats)
    assert served == ["codebot2", "codebot2"]
    assert int(rows["codebot1"]["wretr"]) + int(rows["codebot1"]["wredis"]) >= 1  # A's 503 was retried


async def test_the_shipped_config_is_valid_once_its_certificate_is_in_place(tmp_path: Path) -> None:
    binary = haproxy_binary()
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=codebot.test",
        "-keyout", str(key), "-out", str(cert),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(made.communicate(), 120)
    assert made.returncode == 0, err.decode(errors="replace")
    pem = tmp_path / "codebot.pem"  # HAProxy wants the certificate and its key in one file
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    shipped = DEPLOY_HAPROXY.read_text()
    assert "crt /etc/haproxy/certs/codebot.pem" in shipped
    config = tmp_path / "haproxy.cfg"
    config.write_text(shipped.replace("/etc/haproxy/certs/codebot.pem", str(pem)))
    check = await asyncio.create_subprocess_exec(
        binary, "-c", "-f", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(check.communicate(), 60)
    assert check.returncode == 0, out.decode(errors="replace")
    assert "WARNING" not in out.decode(errors="replace")
