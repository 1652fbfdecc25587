"""Stop, Re-run and Show full output on Slack: real slack-bolt over signed HTTP and Socket Mode, real core."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.slack.actions import ASK, FULL, RERUN, STOP
from bot.slack.app import SlackBot
from core.commands import EXAMPLE_QUESTIONS
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.fakes.slack_limits import message_error
from tests.harness import core_stack
from tests.slack.payloads import mention, sign
from tests.slack.stack import SlackStack, bot_settings, slack_stack

CODE = "print(6 * 7)"


def with_button(slack: FakeSlack, action_id: str, thread_ts: str) -> list[str]:
    """ts of the bot's messages in a thread that show the button `action_id` now, oldest first."""
    return [
        m.ts
        for m in slack.thread_messages("C1", thread_ts)
        if any(b["action_id"] == action_id for b in slack.interactive.buttons(m.ts))
    ]


def shows(slack: FakeSlack, ts: str, words: str) -> bool:
    """Whether the live message `ts` shows `words` in its text or blocks."""
    message = slack.message_at(ts)
    return message is not None and words in message.text + json.dumps(message.blocks)


async def press(s: SlackStack, ts: str, action_id: str, user: str = "U123", value: str | None = None) -> str:
    """Press a button over signed HTTP; return the ephemeral answer the presser got."""
    return await send_press(s, s.slack.interactive.press(ts, action_id, user, value))


async def send_press(s: SlackStack, payload: dict[str, Any]) -> str:
    before = len(s.slack.responses)
    raw = s.slack.interactive.form(payload)
    reply = await s.post(raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)})
    assert reply.status == 200, reply.text
    answers = await s.slack.wait_for(lambda: s.slack.responses[before:], timeout_s=60)
    assert answers[0]["response_type"] == "ephemeral" and answers[0]["replace_original"] is False
    return answers[0]["text"]


async def answered(s: SlackStack, root: str, code: str = CODE) -> str:
    """Ask one question that runs `code`; return the ts of its step message (with its result)."""
    s.llm.enqueue_tool_call(code)
    s.llm.enqueue_text("It is 42.")
    await s.event(mention("what is 6*7", ts=root))
    await s.slack.wait_for(lambda: "It is 42." in s.thread("C1", root), timeout_s=60)
    await s.core.wait_idle(60)
    [result] = with_button(s.slack, RERUN, root)
    return result


def thread_texts(s: SlackStack, root: str) -> list[str]:
    return s.thread("C1", root)


async def test_rerun_by_the_asker_posts_a_new_step_and_others_are_refused(tmp_path, slack):
    slack.admins.add("UADMIN")
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000100.000100"
        result = await answered(s, root)
        assert not with_button(slack, FULL, root)  # nothing was cut: no Show full output

        refused = await press(s, result, RERUN, user="U999")
        assert "Only the person who asked" in refused
        posts = len(thread_texts(s, root))
        assert "Running step 1 again" in await press(s, result, RERUN)
        await s.slack.wait_for(lambda: len(with_button(slack, RERUN, root)) == 2, timeout_s=60)
        await s.core.wait_idle(60)
        new = thread_texts(s, root)[posts:]
        assert any("Running step 1 again" in t for t in new)
        assert any(t.startswith("Result (step 1)") and "Ran OK" in t for t in new)

        assert "already re-run" in await press(s, result, RERUN)  # the same button twice: nothing runs
        assert "already re-run" in await press(s, result, RERUN, user="UADMIN")
        newer = with_button(slack, RERUN, root)[-1]
        assert "Running step 1 again" in await press(s, newer, RERUN, user="UADMIN")  # admins may
        await s.core.wait_idle(60)


async def test_a_forged_button_value_runs_nothing(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000110.000100"
        result = await answered(s, root)
        runs = len(s.llm.review_requests)
        forged = await press(s, result, RERUN, value="1.0123456789abcdef")
        assert "can't find" in forged
        assert "not valid" in await press(s, result, RERUN, value="x" * 3000)
        assert "not valid" in await press(s, result, RERUN, value="<script>")
        assert len(s.llm.review_requests) == runs and len(with_button(slack, RERUN, root)) == 1


async def test_stop_by_the_asker_ends_a_long_run_and_the_thread_is_told(tmp_path, slack):
    async with slack_stack(tmp_path, slack, CODEBOT_LIMIT_TIMEOUT="60s") as s:
        root = "1700000120.000100"
        s.llm.enqueue_tool_call("import time\nprint('go', flush=True)\ntime.sleep(55)")
        s.llm.enqueue_text("never")
        await s.event(mention("wait a minute", ts=root))
        running = await slack.wait_for(  # Stop is on the step message while the step runs
            lambda: [ts for ts in with_button(slack, STOP, root) if shows(slack, ts, "Running the code")],
            timeout_s=60,
        )
        assert "Only the person who asked" in await press(s, running[0], STOP, user="U999")
        stale = slack.interactive.press(running[0], STOP)  # a second client still shows the button
        assert await press(s, running[0], STOP) == "Stopped."
        await s.core.wait_idle(30)
        assert any("Stopped by" in t for t in thread_texts(s, root))
        assert not with_button(slack, STOP, root)  # the step message no longer offers Stop
        assert "It is" not in " ".join(thread_texts(s, root)) and "never" not in thread_texts(s, root)
        assert "already finished" in await send_press(s, stale)


async def test_show_full_output_opens_it_for_the_presser(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000130.000100"
        result = await answered(s, root, "for i in range(3000):\n    print('line', i)")
        [cut] = with_button(slack, FULL, root)
        assert cut == result
        await press_only(s, result, FULL)
        view = await slack.wait_for(lambda: slack.views and slack.views[-1])
        shown = "".join(b["text"]["text"] for b in view["blocks"])
        assert "line 0" in shown and "line 2999" in shown


async def press_only(s: SlackStack, ts: str, action_id: str, user: str = "U123") -> None:
    raw = s.slack.interactive.form(s.slack.interactive.press(ts, action_id, user))
    reply = await s.post(raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)})
    assert reply.status == 200


async def test_an_unsigned_press_is_refused(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000140.000100"
        result = await answered(s, root)
        raw = slack.interactive.form(slack.interactive.press(result, RERUN))
        reply = await s.post(raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw, "wrong")})
        assert reply.status == 401
        assert len(with_button(slack, RERUN, root)) == 1


async def test_rerun_after_reset_says_so_and_runs_nothing(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000145.000100"
        result = await answered(s, root)
        await s.event(mention("reset", thread_ts=root))
        await slack.wait_for(lambda: any("Forgot this thread" in t for t in thread_texts(s, root)))
        assert "was reset" in await press(s, result, RERUN)
        assert len(with_button(slack, RERUN, root)) == 1


async def test_a_button_still_works_after_the_bot_restarts(tmp_path, slack):
    root = "1700000150.000100"
    async with slack_stack(tmp_path, slack) as first:
        result = await answered(first, root)
    async with slack_stack(tmp_path, slack) as second:  # a new process state: same database, new bot
        assert "Running step 1 again" in await press(second, result, RERUN)
        await slack.wait_for(lambda: len(with_button(slack, RERUN, root)) == 2, timeout_s=60)
        await second.core.wait_idle(60)
        assert "I no longer have that output" not in " ".join(r["text"] for r in slack.responses)


async def test_a_press_over_socket_mode(tmp_path, slack):
    async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url) as core:
        bot = SlackBot(core, bot_settings(slack), status_interval_s=0.05)
        running = asyncio.create_task(bot.run_socket_mode())
        try:
            await slack.wait_for(lambda: slack.ws_connections == 1)
            root = "1700000160.000100"
            llm.enqueue_tool_call(CODE)
            llm.enqueue_text("It is 42.")
            await slack.send_event(mention("what is 6*7", ts=root), "env-1")
            [result] = await slack.wait_for(lambda: with_button(slack, RERUN, root), timeout_s=60)
            await core.wait_idle(60)
            payload: dict[str, Any] = slack.interactive.press(result, RERUN, user="U999")
            await slack.interactive.send(payload, "int-1")
            await slack.wait_for(lambda: {"envelope_id": "int-1"} in slack.ws_received)
            answer = await slack.wait_for(lambda: slack.responses and slack.responses[-1])
            assert "Only the person who asked" in answer["text"]
        finally:
            await bot.stop()
            await running


# ---- help that teaches ---------------------------------------------------------------------------


async def test_help_offers_example_questions_and_a_click_asks_one_in_a_new_thread(tmp_path, slack):
    slack.names["U777"] = "carol"
    async with slack_stack(tmp_path, slack) as s:
        reply = await s.command("help", user="U777")
        body = json.loads(reply.text)
        assert message_error(body) is None  # Slack would take these blocks
        labels = [e["text"]["text"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert labels == list(EXAMPLE_QUESTIONS)
        assert all(q in body["text"] for q in EXAMPLE_QUESTIONS)  # also in the help text itself

        s.llm.enqueue_text("It is 1.414213562373095048801688724.")
        payload = slack.interactive.press_ephemeral(body["blocks"], "C1", f"{ASK}_0", user="U777")
        raw = slack.interactive.form(payload)
        assert (
            await s.post(raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)})
        ).status == 200
        [started] = await slack.wait_for(lambda: s.thread("C1", None), timeout_s=60)
        assert "carol" in started and EXAMPLE_QUESTIONS[0] in started
        thread = next(m.ts for m in slack.messages.values() if m.thread_ts is None)
        await slack.wait_for(
            lambda: "It is 1.414213562373095048801688724." in s.thread("C1", thread), timeout_s=60
        )
        await s.core.wait_idle(60)
        assert f"[carol] {EXAMPLE_QUESTIONS[0]}" in json.dumps(
            s.llm.agent_requests[-1]["messages"], ensure_ascii=False
        )


async def test_an_empty_mention_offers_the_examples_and_a_click_asks_in_that_thread(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000170.000100"
        await s.event(mention("", ts=root))
        [notice] = await slack.wait_for(lambda: with_button(slack, f"{ASK}_2", root), timeout_s=60)
        s.llm.enqueue_text("There are 2.")
        await send_click(s, slack.interactive.press(notice, f"{ASK}_2", user="U123"))
        await slack.wait_for(lambda: "There are 2." in s.thread("C1", root), timeout_s=60)
        await s.core.wait_idle(60)
        assert EXAMPLE_QUESTIONS[2] in json.dumps(s.llm.agent_requests[-1]["messages"], ensure_ascii=False)
        forged = slack.interactive.press(notice, f"{ASK}_2", user="U123", value="7")  # no such example
        await send_click(s, forged)
        await s.core.wait_idle(60)
        assert len(s.llm.agent_requests) == 1


async def send_click(s: SlackStack, payload: dict[str, Any]) -> None:
    raw = s.slack.interactive.form(payload)
    reply = await s.post(raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)})
    assert reply.status == 200
