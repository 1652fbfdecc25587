"""`codebot slack --http` as a real process: SIGTERM mid-turn, SIGKILL and restart, a corrupt database."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.core.conftest import chat_is_consistent
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.reliability.bot_process import BotProcess, bot_environ, start_bot
from tests.slack.payloads import mention, message

RESTARTING = "The bot was restarting and had to stop working on this. Please ask again."


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


async def ask_and_wait(bot: BotProcess, http, slack: FakeSlack, body: dict, root: str, answer: str) -> None:
    assert await bot.send(http, body) == 200
    await slack.wait_for(lambda: answer in texts(slack, root), timeout_s=30)


async def test_sigterm_refuses_new_events_and_lets_the_running_turn_finish(tmp_path, slack, llm, http):
    env = bot_environ(tmp_path, slack.base_url, llm.base_url, CODEBOT_SHUTDOWN_GRACE_S="10")
    bot = await start_bot(env, tmp_path)
    try:
        llm.enqueue_delay(1.5)
        llm.enqueue_text("finished during shutdown")
        root = "1700000300.000100"
        assert await bot.send(http, mention("slow question", ts=root)) == 200
        await llm.wait_for_requests(1, timeout=30)
        bot.proc.send_signal(signal.SIGTERM)
        for _ in range(100):  # until the signal is handled
            if await bot.health(http) == 503:
                break
            await asyncio.sleep(0.02)
        late = await bot.send(http, mention("too late", ts="1700000300.000900"))
        code = await bot.wait(15)
    finally:
        await bot.kill()
    assert late == 503  # Slack redelivers it later, to us after the restart or to another replica
    assert code == 0, "".join(bot.log)
    assert "finished during shutdown" in texts(slack, root)
    assert RESTARTING not in texts(slack, root)
    assert not any("too late" in str(r) for r in llm.requests)


async def test_a_turn_longer_than_the_grace_period_is_abandoned_with_a_notice(tmp_path, slack, llm, http):
    env = bot_environ(tmp_path, slack.base_url, llm.base_url, CODEBOT_SHUTDOWN_GRACE_S="1")
    root = "1700000301.000100"
    bot = await start_bot(env, tmp_path)
    try:
        llm.enqueue_text("Noted: tangerine.")
        first = mention("the code word is tangerine", ts=root)
        await ask_and_wait(bot, http, slack, first, root, "Noted: tangerine.")
        llm.enqueue_delay(60)
        llm.enqueue_text("never")
        assert await bot.send(http, message("now something slow", thread_ts=root)) == 200
        await llm.wait_for_requests(2, timeout=30)
        bot.proc.send_signal(signal.SIGTERM)
        code = await bot.wait(15)
    finally:
        await bot.kill()
    assert code == 0, "".join(bot.log)
    assert texts(slack, root)[-1] == RESTARTING
    # After the restart the thread continues where it was, without a mention.
    bot = await start_bot(env, tmp_path)
    try:
        llm.enqueue_text("The code word is tangerine.")
        follow_up = message("what was the code word?", thread_ts=root)
        await ask_and_wait(bot, http, slack, follow_up, root, "The code word is tangerine.")
    finally:
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait(15) == 0
    said = str(llm.agent_requests[-1]["messages"])
    assert "the code word is tangerine" in said and "what was the code word?" in said
    assert chat_is_consistent(llm.agent_requests[-1]["messages"])
    assert not any("restarted while answering" in t for t in texts(slack, root))  # reported once


async def test_sigkill_mid_turn_is_reported_after_restart_and_the_thread_goes_on(tmp_path, slack, llm, http):
    env = bot_environ(tmp_path, slack.base_url, llm.base_url)
    root = "1700000302.000100"
    bot = await start_bot(env, tmp_path)
    try:
        llm.enqueue_text("Noted: 7.")
        await ask_and_wait(bot, http, slack, mention("remember 7", ts=root), root, "Noted: 7.")
        llm.enqueue_delay(60)
        llm.enqueue_text("never")
        assert await bot.send(http, message("plot the sales", thread_ts=root)) == 200
        await llm.wait_for_requests(2, timeout=30)
    finally:
        await bot.kill()
    bot = await start_bot(env, tmp_path)
    try:
        notice = await slack.wait_for(
            lambda: next((t for t in texts(slack, root) if "restarted while answering" in t), None), 30
        )
        llm.enqueue_text("It was 7.")
        await ask_and_wait(bot, http, slack, message("what was it?", thread_ts=root), root, "It was 7.")
    finally:
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait(15) == 0
    assert "plot the sales" in notice
    assert "remember 7" in str(llm.agent_requests[-1]["messages"])


async def test_a_corrupt_database_stops_start_up_with_a_clear_message(tmp_path, slack, llm):
    env = bot_environ(tmp_path, slack.base_url, llm.base_url)
    (tmp_path / "bot.db").write_bytes(b"these are meeting notes, not a database\n" * 50)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "slack", "--http", "--port", "0",
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env,
    )  # fmt: skip
    _, raw = await asyncio.wait_for(proc.communicate(), 30)
    err = raw.decode()
    assert proc.returncode == 4, err
    assert "codebot: storage error" in err and "is not a codebot database or is corrupt" in err
    assert "move it aside" in err and "Traceback" not in err
    assert (tmp_path / "bot.db").read_bytes().startswith(b"these are meeting notes")
