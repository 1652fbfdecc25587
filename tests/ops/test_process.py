"""Real `codebot slack` processes (Socket Mode and HTTP mode): health, readiness, metrics, JSON logs."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.ops.conftest import sample_value
from tests.ops.process import PORT_TAKEN, OpsBot, free_port, start_ops_bot
from tests.ops.test_logs import DISCORD, OPENAI, SIGNING, SLACK_APP, SLACK_BOT
from tests.reliability.bot_process import bot_environ, start_bot
from tests.slack.payloads import mention


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def texts(slack: FakeSlack, root: str) -> list[str]:
    return [c.params["text"] for c in slack.thread_posts("C1", root)]


async def test_socket_mode_serves_health_readiness_metrics_and_json_logs(tmp_path, slack, llm, http):
    env = bot_environ(
        tmp_path, slack.base_url, llm.base_url,
        SLACK_BOT_TOKEN=SLACK_BOT, SLACK_APP_TOKEN=SLACK_APP, SLACK_SIGNING_SECRET=SIGNING,
        OPENAI_API_KEY=OPENAI, CODEBOT_LOG_FORMAT="json", CODEBOT_LOG_LEVEL="DEBUG",
        CODEBOT_SHUTDOWN_GRACE_S="20",
    )  # fmt: skip
    bot = await start_ops_bot(["slack"], env, tmp_path)
    try:
        assert (await bot.get(http, "/healthz"))[0] == 200
        assert json.loads(await bot.wait_status(http, "/readyz", 200, timeout_s=60)) == {"ready": True}
        await slack.wait_for(lambda: slack.ws_connections == 1, timeout_s=30)

        llm.enqueue_tool_call("result = 6 * 7")
        llm.enqueue_text("It is 42.")
        await slack.send_event(mention("six times seven?", ts="1700000400.000100", event_id="EvOps1"), "e1")
        await slack.wait_for(lambda: "It is 42." in texts(slack, "1700000400.000100"), timeout_s=60)
        ok = {"outcome": "ok", "platform": "slack"}
        metrics = await bot.wait_sample(http, "codebot_turns_total", ok, 1, timeout_s=30)
        assert sample_value(metrics, "codebot_turns_total", ok) == 1
        assert sample_value(metrics, "codebot_sandbox_seconds_sum", {}) > 0

        await _readiness_drops_while_a_turn_finishes_during_shutdown(bot, slack, llm, http)
    finally:
        await bot.kill()
    _logs_are_json_with_turn_ids_and_no_secret(bot)


async def _readiness_drops_while_a_turn_finishes_during_shutdown(
    bot: OpsBot, slack: FakeSlack, llm: FakeOpenAI, http: aiohttp.ClientSession
) -> None:
    llm.enqueue_delay(5.0)  # the turn outlives the checks below by seconds, even on a loaded machine
    llm.enqueue_text("finished while stopping")
    root = "1700000401.000100"
    await slack.send_event(mention("slow one", ts=root, event_id="EvOps2"), "e2")
    await llm.wait_for_requests(4, timeout=30)  # 3 for the first turn, then this one's first call
    bot.proc.send_signal(signal.SIGTERM)
    body = await bot.wait_status(http, "/readyz", 503, timeout_s=30)
    assert json.loads(body) == {"ready": False, "reason": "shutting down"}
    assert (await bot.get(http, "/healthz"))[0] == 200  # alive until the last turn is done
    assert await bot.wait(30) == 0, "".join(bot.log)
    assert "finished while stopping" in texts(slack, root)


def _logs_are_json_with_turn_ids_and_no_secret(bot: OpsBot) -> None:
    entries = [json.loads(line) for line in bot.log]  # every line of the process parses
    assert len(entries) > 20  # DEBUG level: the SDKs' own lines are checked too
    for line in bot.log:
        assert not [s for s in (SLACK_BOT, SLACK_APP, SIGNING, OPENAI) if s in line], line
    turns = {e["turn"]: e["thread"] for e in entries if "turn" in e}
    assert turns == {"EvOps1": "slack:T111:C1:1700000400.000100", "EvOps2": "slack:T111:C1:1700000401.000100"}


async def test_http_mode_keeps_healthz_on_the_events_port_and_adds_the_ops_port(tmp_path, slack, llm, http):
    env = bot_environ(tmp_path, slack.base_url, llm.base_url)
    for _ in range(5):  # the ops port is picked by the test; retry if another process takes it
        port = free_port()
        try:
            events = await start_bot({**env, "CODEBOT_HTTP_PORT": str(port)}, tmp_path)
            break
        except AssertionError as exc:
            if PORT_TAKEN not in str(exc):
                raise
    try:
        assert await events.health(http) == 200
        ops = OpsBot(events.proc, ops_port=port)
        assert json.loads(await ops.wait_status(http, "/readyz", 200, timeout_s=30)) == {"ready": True}
        status, text = await ops.get(http, "/metrics")
        assert status == 200 and "codebot_turns_waiting 0.0" in text
    finally:
        await events.kill()


async def test_discord_mode_serves_readiness_and_counts_a_turn(tmp_path, llm, http):
    fake = FakeDiscord(token=DISCORD)
    await fake.start()
    try:
        env = bot_environ(
            tmp_path, "http://127.0.0.1:9/unused", llm.base_url,
            DISCORD_TOKEN=DISCORD, DISCORD_API_URL=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
            CODEBOT_LOG_FORMAT="json",
        )  # fmt: skip
        bot = await start_ops_bot(["discord"], env, tmp_path)
        try:
            assert json.loads(await bot.wait_status(http, "/readyz", 200, timeout_s=60)) == {"ready": True}
            # /readyz covers the core, not the gateway connection: wait for the bot's IDENTIFY too (the
            # fake's waiters wake on REST calls only, and its dispatch waits just 5 s for this event).
            await asyncio.wait_for(fake._ready.wait(), 60)
            llm.enqueue_text("Hello from Discord.")
            mention = f"<@{fake.bot_user['id']}> hello"
            await fake.send_message(mention, fake.user("alice"), mention_bot=True)
            labels = {"platform": "discord", "outcome": "ok"}
            await bot.wait_sample(http, "codebot_turns_total", labels, 1, timeout_s=60)
            bot.proc.send_signal(signal.SIGTERM)
            assert await bot.wait(30) == 0, "".join(bot.log)
        finally:
            await bot.kill()
    finally:
        await fake.stop()
    assert not [line for line in bot.log if DISCORD in line]
    assert any(json.loads(line).get("thread", "").startswith("discord:") for line in bot.log)


async def test_the_console_does_not_take_the_ops_port_of_a_bot_on_the_same_host(tmp_path, llm):
    with socket.socket() as taken:  # a running bot's listener, from the same .env
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = bot_environ(tmp_path, "http://127.0.0.1:9/unused", llm.base_url)
        env["CODEBOT_HTTP_PORT"] = str(taken.getsockname()[1])
        llm.enqueue_text("Console answer.")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "console",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(b"hello\n"), 90)
    assert proc.returncode == 0, err.decode()
    assert "answer: Console answer." in out.decode()
