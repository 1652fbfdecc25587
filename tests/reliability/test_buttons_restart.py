"""A Slack button pressed after the bot process restarted: `codebot slack --http` as a real process, twice."""

from __future__ import annotations

import signal

import aiohttp

from bot.slack.actions import RERUN
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.reliability.bot_process import BotProcess, bot_environ, start_bot
from tests.slack.payloads import mention, sign


def rerun_buttons(slack: FakeSlack, root: str) -> list[str]:
    return [
        m.ts
        for m in slack.thread_messages("C1", root)
        if any(b["action_id"] == RERUN for b in slack.interactive.buttons(m.ts))
    ]


async def stop(bot: BotProcess) -> None:
    bot.proc.send_signal(signal.SIGTERM)
    assert await bot.wait(60) == 0


async def test_a_rerun_button_from_the_previous_process_works(tmp_path, slack):
    async with FakeOpenAI() as llm, aiohttp.ClientSession() as http:
        env = bot_environ(tmp_path, slack.base_url, llm.base_url)
        root = "1700000400.000100"
        first = await start_bot(env, tmp_path)
        try:
            llm.enqueue_tool_call("print(6 * 7)")
            llm.enqueue_text("It is 42.")
            assert await first.send(http, mention("what is 6*7", ts=root)) == 200
            [result] = await slack.wait_for(lambda: rerun_buttons(slack, root), timeout_s=60)
            await slack.wait_for(
                lambda: any("It is 42." in m.text + m.streamed for m in slack.messages.values())
            )
            await stop(first)
        finally:
            await first.kill()

        second = await start_bot(env, tmp_path)  # a new process: nothing in memory from the first
        try:
            raw = slack.interactive.form(slack.interactive.press(result, RERUN))
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
            async with http.post(second.events_url, data=raw, headers=headers) as resp:
                assert resp.status == 200
            answer = await slack.wait_for(lambda: slack.responses and slack.responses[-1], timeout_s=60)
            assert "Running step 1 again" in answer["text"]
            await slack.wait_for(lambda: len(rerun_buttons(slack, root)) == 2, timeout_s=60)
            await stop(second)
        finally:
            await second.kill()
