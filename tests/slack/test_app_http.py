"""The Slack adapter end to end over HTTP: signed events in, Web API calls out, real core and sandbox."""

from __future__ import annotations

import asyncio
import json
import time

from tests.slack.payloads import BOT, mention, message
from tests.slack.stack import slack_stack

SQRT = "import math\nresult = math.sqrt(2)\nprint(result)"


async def settle(s) -> None:
    """Let earlier events' listeners finish: a later question is answered only after they ran."""
    s.llm.enqueue_text("sentinel")
    root = f"1699999999.{len(s.slack.calls):06d}"
    await s.event(mention("sentinel", channel="CSENTINEL", ts=root))
    await s.slack.wait_for(lambda: "sentinel" in s.thread("CSENTINEL", root))
    await s.core.wait_idle(10)


def elsewhere(calls) -> list[str]:
    """Methods of calls that did not concern the sentinel channel."""
    return [
        c.method
        for c in calls
        if c.params.get("channel", c.params.get("channel_id")) != "CSENTINEL" and c.method != "users.info"
    ]


def status_texts(slack) -> list[str]:
    return [c.params["blocks"][0]["elements"][0]["text"] for c in slack.calls_to("chat.update")]


async def test_mention_posts_one_step_message_and_the_answer_in_the_thread(tmp_path, slack):
    async with slack_stack(tmp_path, slack, status_interval_s=0) as s:  # every state shown
        s.llm.enqueue_tool_call(SQRT)
        s.llm.enqueue_text("The square root of 2 is about **1.4142**.")
        body = mention("what is the sqrt of 2", ts="1700000000.000100")
        ack = await s.event(body)
        assert (ack.status, ack.text) == (200, "")
        await s.wait_posts("C1", "1700000000.000100", 2)
        await s.core.wait_idle(10)
    # One step and one answer: no status message, no separate code/verdict/result messages.
    step, answer = slack.thread_messages("C1", "1700000000.000100")
    assert [c.params["text"] for c in slack.thread_posts("C1", "1700000000.000100")] == [
        "Code (step 1)",
        "The square root of 2 is about **1.4142**.",
    ]
    # The step message grew in place: code, then the verdict, then the result, all still shown.
    assert step.edits == 2
    shown = str(step.blocks)
    assert SQRT.splitlines()[1] in step.blocks[1]["text"]["text"]
    assert "Safety review: Allowed" in shown and "1.4142135623730951" in shown
    assert step.text.startswith("Result (step 1): Ran OK · exit 0")
    assert answer.blocks[0]["text"]["text"] == "The square root of 2 is about *1.4142*."
    [reaction] = slack.reactions("eyes")
    assert reaction.params == {"channel": "C1", "timestamp": "1700000000.000100", "name": "eyes"} | {
        k: v for k, v in reaction.params.items() if k == "team_id"
    }
    # when the answer is in, the :eyes: on the question becomes a check mark
    [removed] = slack.reactions("eyes", "reactions.remove")
    [done] = slack.reactions("white_check_mark")
    assert removed.params["timestamp"] == done.params["timestamp"] == "1700000000.000100"
    # The thread's status line said what was happening, and was cleared at the end.
    assert slack.status_history == [
        "is thinking…",
        "is reviewing step 1…",
        "is running step 1…",
        "is thinking…",
        "",
    ]
    assert slack.statuses[("C1", "1700000000.000100")] == ""
    assert all(u.params["channel"] == "C1" for u in slack.calls_to("chat.update"))


async def test_follow_up_without_mention_continues_the_conversation(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("Sure: 1.4142.")
        root = "1700000001.000100"
        await s.event(mention("sqrt of 2?", ts=root))
        await s.wait_posts("C1", root, 1)  # an answer without code is one message
        await s.core.wait_idle(10)
        s.llm.enqueue_text("Squared, it is 2.")
        await s.event(message("and squared?", thread_ts=root))
        await s.slack.wait_for(lambda: "Squared, it is 2." in s.thread("C1", root))
        await s.core.wait_idle(10)
        last = s.llm.agent_requests[-1]["messages"]
        said = " ".join(str(m.get("content")) for m in last)
        assert "sqrt of 2?" in said and "Sure: 1.4142." in said and "and squared?" in said
        # A thread the bot never joined, and chatter at the channel's top level, get nothing.
        before = len(slack.calls)
        await s.event(message("unrelated", thread_ts="1600000000.000001"))
        await s.event(message("hello channel"))
        await settle(s)
        assert elsewhere(slack.calls[before:]) == []


async def test_direct_messages_are_one_conversation_answered_top_level(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("Hi! Ask me anything.")
        await s.event(message("hello bot", channel="D42", channel_type="im"))
        await s.slack.wait_for(lambda: "Hi! Ask me anything." in s.thread("D42", None))
        await s.core.wait_idle(10)
        s.llm.enqueue_text("You said hello.")
        await s.event(message(f"<@{BOT}> what did I say?", channel="D42", channel_type="im"))
        await s.slack.wait_for(lambda: "You said hello." in s.thread("D42", None))
        said = " ".join(str(m.get("content")) for m in s.llm.agent_requests[-1]["messages"])
        assert "hello bot" in said and "what did I say?" in said and f"<@{BOT}>" not in said


async def test_long_output_is_truncated_in_the_message_and_attached(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call("for i in range(2000):\n    print('row', i)")
        s.llm.enqueue_text("Printed 2000 rows.")
        root = "1700000002.000100"
        await s.event(mention("print 2000 rows", ts=root))
        await s.slack.wait_for(lambda: "Printed 2000 rows." in s.thread("C1", root))
        await s.core.wait_idle(10)
    [output] = [f for f in slack.files if f["filename"] == "output_step1.txt"]
    assert output["thread_ts"] == root
    full = slack.uploads[output["id"]].decode()
    assert "row 0\n" in full and "row 1999\n" in full
    step = s.step_message("C1", root)
    assert step.text.startswith("Result")
    shown = str(step.blocks)
    assert "row 0" in shown and "row 1999" not in shown and "output_step1.txt" in shown


async def test_mentions_in_output_and_answer_cannot_ping_anyone(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call("print('<!channel> <!here> <@U999> <!subteam^S1|@devs> ```')")
        s.llm.enqueue_text("Done <!everyone> @here")
        root = "1700000003.000100"
        await s.event(mention("ping everyone", ts=root))
        await s.slack.wait_for(lambda: any(t.startswith("Done") for t in s.thread("C1", root)))
        await s.core.wait_idle(10)
    for call in slack.calls_to("chat.postMessage") + slack.calls_to("chat.update"):
        sent = str(call.params.get("text")) + str(call.params.get("blocks"))
        assert "<!" not in sent and "<@" not in sent, sent
        assert "@here" not in sent.replace("@\u200bhere", "")
    result = s.step_message("C1", root)
    stdout_section = next(b["text"]["text"] for b in result.blocks if "&lt;!channel&gt;" in str(b))
    assert stdout_section.count("```") == 2 and "&lt;!channel&gt;" in stdout_section


async def test_wrongly_signed_and_stale_requests_get_401_and_do_nothing(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        body = mention("hi")
        assert (await s.event(body, secret="wrong-secret")).status == 401
        assert (await s.event(body, ts=int(time.time()) - 600)).status == 401
        assert (await s.post("{}", {"Content-Type": "application/json"})).status == 401
        challenge = await s.event({"type": "url_verification", "challenge": "abc123", "token": "legacy"})
        assert (challenge.status, json.loads(challenge.text)) == (200, {"challenge": "abc123"})
        await s.core.wait_idle(5)
        assert [c.method for c in slack.calls] == ["auth.test"]  # the start-up token check only
        assert s.llm.requests == []


async def test_a_retried_event_runs_once(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("only once")
        body = mention("count me", ts="1700000004.000100", event_id="EvRETRY1")
        first = await s.event(body)
        retry = await s.event(body, retry_num=1)
        assert first.status == retry.status == 200
        await s.slack.wait_for(lambda: "only once" in s.thread("C1", "1700000004.000100"))
        await s.core.wait_idle(10)
        await s.event(body, retry_num=2)
        await settle(s)
    assert s.thread("C1", "1700000004.000100").count("only once") == 1
    assert len(s.llm.agent_requests) == 2  # the question once, plus the sentinel
    assert [c.params["channel"] for c in slack.reactions("eyes")] == ["C1", "CSENTINEL"]


async def test_rate_limited_web_api_call_is_retried(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("made it")
        slack.fail_next("chat.postMessage", status=429, retry_after=0)
        slack.fail_next("reactions.add", status=429, retry_after=0)
        root = "1700000005.000100"
        await s.event(mention("hi", ts=root))
        await s.slack.wait_for(lambda: "made it" in s.thread("C1", root))
        await s.slack.wait_for(lambda: len(slack.reactions("eyes")) == 2)
    statuses = [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == root]
    assert statuses[0].params == statuses[1].params  # the same status post, sent again after the 429


async def test_the_bots_own_and_other_bots_messages_are_ignored(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("first")
        root = "1700000006.000100"
        await s.event(mention("start", ts=root))
        await s.slack.wait_for(lambda: "first" in s.thread("C1", root))
        await s.core.wait_idle(10)
        before = len(slack.calls)
        await s.event(message("first", user=BOT, thread_ts=root, bot_id="BBOT"))  # our own echo
        await s.event(message("beep", user="U777", thread_ts=root, bot_id="B777"))  # another bot
        await s.event(message("boop", user=None, thread_ts=root, subtype="bot_message", bot_id="B9"))
        await s.event(message("edited", thread_ts=root, subtype="message_changed"))
        bot_mention = mention("loop?", user="U777", thread_ts=root)
        bot_mention["event"]["bot_id"] = "B777"  # bots mentioning us could loop forever
        await s.event(bot_mention)
        await settle(s)
        assert elsewhere(slack.calls[before:]) == []
        assert s.thread("C1", root).count("first") == 1


PLOT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.plot([0, 1, 2], [0, 1, 4])
plt.savefig("plot.png")
result = "saved"
"""


async def test_a_plot_from_the_sandbox_is_uploaded_into_the_thread(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call(PLOT)
        s.llm.enqueue_text("Here is the plot.")
        root = "1700000007.000100"
        await s.event(mention("plot x squared", ts=root))
        await s.slack.wait_for(lambda: "Here is the plot." in s.thread("C1", root), timeout_s=30)
        await s.core.wait_idle(10)
    [plot] = slack.files
    assert (plot["filename"], plot["channel"], plot["thread_ts"]) == ("plot.png", "C1", root)
    assert slack.uploads[plot["id"]].startswith(b"\x89PNG\r\n\x1a\n")
    texts = [m.text for m in slack.thread_messages("C1", root)]
    assert texts.index(next(t for t in texts if t.startswith("Result"))) < texts.index("Here is the plot.")


async def test_a_failing_language_model_is_reported_in_the_thread(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        for _ in range(4):
            s.llm.enqueue_error(500)
        root = "1700000008.000100"
        await s.event(mention("anything", ts=root))
        await s.wait_posts("C1", root, 1)
        await s.core.wait_idle(30)
    notices = [p.params["blocks"][0]["text"]["text"] for p in slack.thread_posts("C1", root)]
    assert notices and notices[-1].startswith(":warning:")
    assert [c.params["timestamp"] for c in slack.reactions("x")] == [root]  # the question is marked failed
    assert "sk-test" not in str(slack.calls)  # the LLM key never reaches Slack


async def test_stop_refuses_new_events_and_lets_the_running_turn_finish(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_delay(1.0)
        s.llm.enqueue_text("finished during shutdown")
        root = "1700000009.000100"
        await s.event(mention("slow one", ts=root))
        await s.llm.wait_for_requests(1)
        async with s.http.get(f"{s.url}/healthz") as health:
            assert health.status == 200
        stopping = asyncio.create_task(s.bot.stop())
        await s.slack.wait_for(lambda: not s.core.accepting)
        late = await s.event(mention("too late"))
        assert late.status == 503  # Slack retries it later, once the bot is back
        async with s.http.get(f"{s.url}/healthz") as health:
            assert health.status == 503
        await stopping
    assert "finished during shutdown" in s.thread("C1", root)
    assert not any("too late" in str(r) for r in s.llm.requests)


async def test_a_mention_inside_a_human_thread_starts_the_conversation_there(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000030.000100"  # a thread people started; the bot was never in it
        s.llm.enqueue_text("joined")
        await s.event(mention("help us here", ts="1700000030.000500", thread_ts=root))
        await s.slack.wait_for(lambda: "joined" in s.thread("C1", root))
        await s.core.wait_idle(10)
        assert slack.calls_to("reactions.add")[0].params["timestamp"] == "1700000030.000500"
        s.llm.enqueue_text("still with you")
        await s.event(message("thanks, and now?", thread_ts=root))
        await s.slack.wait_for(lambda: "still with you" in s.thread("C1", root))
        said = " ".join(str(m.get("content")) for m in s.llm.agent_requests[-1]["messages"])
        assert "help us here" in said and "thanks, and now?" in said
