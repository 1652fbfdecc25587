"""Bad input through the Slack adapter over HTTP: each gets a clear reply and nothing breaks."""

from __future__ import annotations

import json

import pytest

from tests.slack.payloads import mention, message
from tests.slack.stack import slack_stack

EMPTY_HINT = "Ask me something I can answer by running Python"


def said(s, index: int = -1) -> str:
    """Every message of one agent request, decoded (what the model was shown)."""
    return json.dumps(s.llm.agent_requests[index]["messages"], ensure_ascii=False)


@pytest.mark.parametrize("text", ["", "   \n\t  "], ids=["empty", "whitespace"])
async def test_an_empty_mention_gets_a_hint_and_no_llm_call(tmp_path, slack, text):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000200.000100"
        assert (await s.event(mention(text, ts=root))).status == 200
        [post] = await s.wait_posts("C1", root, 1)
        await s.core.wait_idle(5)
    assert EMPTY_HINT in post.params["text"]
    assert s.llm.requests == []


async def test_a_50000_character_message_is_refused_quickly_and_clearly(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        root = "1700000201.000100"
        ack = await s.event(mention("x" * 50_000, ts=root))
        [post] = await s.wait_posts("C1", root, 1)
        await s.core.wait_idle(5)
    assert ack.status == 200 and ack.seconds < 1
    text = post.params["text"]
    assert "50,000 characters" in text and "8,000" in text and len(text) < 300
    assert s.llm.requests == []


async def test_other_languages_round_trip_into_the_model_and_back(tmp_path, slack):
    question = "2 的平方根是多少？ Что такое √2? ما هو الجذر التربيعي 🚀"
    answer = "√2 ≈ 1.41421 — 答案是 1.41421 ✅ Ответ: 1,41421"
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call("print('平方根', round(2 ** 0.5, 5))")
        s.llm.enqueue_text(answer)
        root = "1700000202.000100"
        await s.event(mention(question, ts=root))
        await s.slack.wait_for(lambda: answer in s.thread("C1", root), timeout_s=20)
        await s.core.wait_idle(10)
        s.llm.enqueue_text("好的")
        await s.event(mention("再说一遍", ts="1700000202.000200", thread_ts=root))
        await s.slack.wait_for(lambda: "好的" in s.thread("C1", root))
    assert question in said(s, 0)
    result = s.step_message("C1", root)
    assert "平方根 1.41421" in str(result.blocks)
    assert answer in said(s) and question in said(s)  # stored and reloaded intact


async def test_a_code_block_pasted_in_the_question_reaches_the_model_as_written(tmp_path, slack):
    pasted = "why does this fail?\n```def f(x):\n    return x &lt; 2 &amp;&amp; x\n```"
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("`&&` is not Python; use `and`.")
        root = "1700000203.000100"
        await s.event(mention(pasted, ts=root))
        await s.slack.wait_for(lambda: any("not Python" in t for t in s.thread("C1", root)))
        await s.core.wait_idle(5)
    shown = said(s)
    assert "```def f(x):\\n    return x < 2 && x\\n```" in shown  # entities undone, fences kept


async def test_a_model_answer_without_code_is_posted_as_is(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("Paris is the capital of France.")
        root = "1700000204.000100"
        await s.event(mention("what is the capital of France?", ts=root))
        await s.slack.wait_for(lambda: "Paris is the capital of France." in s.thread("C1", root))
        await s.core.wait_idle(5)
    texts = s.thread("C1", root)
    assert not any(t.startswith(("Code", "Result", "Safety")) for t in texts)
    assert slack.status_history[0] == "is thinking…" and slack.status_history[-1] == ""  # set, then cleared
    assert texts == ["Paris is the capital of France."]  # no status message beside the answer


BINARY = "import sys\nsys.stdout.buffer.write(bytes(range(256)) + b'\\xff\\xfe\\xc3(\\xed\\xa0\\x80')\n"


async def test_binary_and_invalid_utf8_output_is_shown_and_stored(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call(BINARY)
        s.llm.enqueue_text("It printed bytes.")
        root = "1700000205.000100"
        await s.event(mention("print some bytes", ts=root))
        await s.slack.wait_for(lambda: "It printed bytes." in s.thread("C1", root), timeout_s=20)
        await s.core.wait_idle(10)
        s.llm.enqueue_text("still here")
        await s.event(mention("and now?", ts="1700000205.000200", thread_ts=root))
        await s.slack.wait_for(lambda: "still here" in s.thread("C1", root))
    result = s.step_message("C1", root)
    assert "Ran OK" in result.text
    assert "\ufffd" in str(result.blocks)  # undecodable bytes shown as replacement characters
    assert "It printed bytes." in said(s)  # the turn was stored despite the bytes


LONE = "\ud83d"  # half of a surrogate pair: valid in JSON text, not encodable as UTF-8


async def test_lone_surrogates_from_the_model_break_neither_slack_nor_the_store(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_raw_tool_call("execute_code", json.dumps({"code": f"# {LONE}\nresult = 'ok {LONE}'"}))
        s.llm.enqueue_text(f"Here {LONE} it is.")
        root = "1700000206.000100"
        await s.event(mention(f"surrogates {LONE} in and out", ts=root))  # the question has one too
        await s.slack.wait_for(lambda: any(t.startswith("Here") for t in s.thread("C1", root)), timeout_s=20)
        await s.core.wait_idle(10)
        s.llm.enqueue_text("still here")
        await s.event(mention("and now?", ts="1700000206.000200", thread_ts=root))
        await s.slack.wait_for(lambda: "still here" in s.thread("C1", root))
    texts = [m.text for m in slack.thread_messages("C1", root)]  # as the thread reads now
    assert any(t.startswith("Result (step 1)") for t in texts)
    assert not any("went wrong" in t for t in texts)
    assert "surrogates \ufffd in and out" in said(s) and "Here \ufffd it is." in said(s)  # stored, reloaded


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("set timeout banana", "timeout"),
        ("set", "set"),
        ("set nonsense 5", "nonsense"),
        ("audit -1 ; DROP TABLE messages", ""),
        ("usage 💥💥💥 " + "x" * 3000, ""),
        ("\u202e\u0000 reset", ""),
        ("reset not-a-thread", "Copy link"),
        ("frobnicate --all", "frobnicate"),
    ],
)
async def test_slash_commands_with_junk_arguments_get_a_short_clear_reply(tmp_path, slack, text, expect):
    slack.admins.add("UADMIN")
    async with slack_stack(tmp_path, slack) as s:
        reply = await s.command(text, user="UADMIN")
        after = await s.command("limits", user="UADMIN")
    assert reply.status == 200 and reply.seconds < 3
    body = json.loads(reply.text)
    assert body["text"] and len(body["text"]) < 3000 and expect in body["text"]
    assert "failed on our side" not in body["text"] and "Traceback" not in body["text"]
    assert "Limits for this workspace" in json.loads(after.text)["text"]  # nothing broke


async def test_a_follow_up_typed_while_the_first_answer_is_running_is_not_ignored(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_delay(1.0)
        s.llm.enqueue_text("first answer")
        s.llm.enqueue_text("second answer")
        root = "1700000207.000100"
        await s.event(mention("sum 1 to 10", ts=root))
        await s.llm.wait_for_requests(1)  # the bot is working on it; nothing is stored yet
        await s.event(message("oh, and show two decimals", thread_ts=root))  # no mention: a follow-up
        await s.slack.wait_for(lambda: "second answer" in s.thread("C1", root), timeout_s=10)
    texts = s.thread("C1", root)
    assert texts.index("first answer") < texts.index("second answer")
    assert "sum 1 to 10" in said(s) and "oh, and show two decimals" in said(s)
