"""Every message the bot builds is one real Slack accepts, whatever the content (Block Kit limits)."""

from __future__ import annotations

import dataclasses

import pytest
from slack_sdk.errors import SlackApiError

from bot.slack.render import render
from core.types import AnswerReply, CodeReply, Finding, NoticeReply, ResultReply, Verdict, VerdictReply
from sandbox.types import OutputFile, RunResult
from tests.fakes.slack_limits import message_error
from tests.slack.payloads import mention
from tests.slack.stack import slack_stack

HUGE_NAME = "&<>" * 60 + "n" * 70  # 250 characters that triple in length once escaped
MANY_FILES = RunResult(
    stdout="&" * 50_000,
    stderr="<" * 80_000,
    error="Traceback\n" + "> " * 30_000,
    result="'" + "x" * 60_000 + "'",
    files=tuple(OutputFile(f"{i}{HUGE_NAME}", b"0123456789") for i in range(10)),
    skipped_files=tuple(f"{i}{HUGE_NAME}" for i in range(3000)),
    truncated=True,
)
REPLIES = [
    ResultReply(1, MANY_FILES),
    ResultReply(2, dataclasses.replace(MANY_FILES, stdout="\n".join("`" * 9 for _ in range(20_000)))),
    CodeReply(1, "x = 1\n" * 40_000),
    VerdictReply(
        1,
        Verdict(
            False,
            "high",
            reasons=tuple("&" * 300 for _ in range(5)),
            findings=tuple(Finding("process", n, "<" * 300) for n in range(2000)),
        ),
    ),
    AnswerReply("| a | b |\n" * 30_000),
    AnswerReply(("```\n" + "&" * 5000 + "\n```\n") * 40),
    NoticeReply("error", "&" * 50_000),
]


def payload(message) -> dict:
    return {"text": message.text, "blocks": list(message.blocks)}


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_no_content_makes_a_message_slack_would_refuse(reply):
    for message in render(reply):
        assert message_error(payload(message)) is None


def test_thousands_of_skipped_files_are_counted_not_listed():
    [message] = render(ResultReply(1, MANY_FILES))
    notes = [b["elements"][0]["text"] for b in message.blocks if b["type"] == "context"]
    skipped = next(n for n in notes if n.startswith("Not returned"))
    assert "3,000" in skipped and "more" in skipped and len(skipped) < 1000
    files = next(n for n in notes if n.startswith(":paperclip:"))
    assert "more" in files and len(files) < 1000
    assert {a.filename for a in message.attachments} >= {f.name for f in MANY_FILES.files}  # all uploaded


PROGRAM = """
import sys
print("finished", flush=True)
for i in range(1500):
    with open(f"{i:04d}_" + "n" * 200 + ".txt", "w") as f:
        f.write("x")
sys.stderr.write("<&>" * 15_000)  # 45 KB: under the output cap, 135,000 characters once escaped
"""


async def test_a_run_leaving_thousands_of_files_still_shows_its_result(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call(PROGRAM)
        s.llm.enqueue_text("I wrote the files.")
        await s.event(mention("write many files", ts="1700000000.000900"))
        await s.wait_posts("C1", "1700000000.000900", 2, timeout_s=60)
        await s.core.wait_idle(60)
    result = s.step_message("C1", "1700000000.000900")
    assert result.text.startswith("Result (step 1)")
    shown = str(result.blocks)
    assert "Ran OK" in shown and "finished" in shown and "&lt;&amp;&gt;" in shown
    assert "1,490 over a limit" in shown and "more" in shown
    assert s.thread("C1", "1700000000.000900")[-1] == "I wrote the files."
    assert slack.refused == []  # and the fixture checks it again for every other Slack test


@pytest.mark.parametrize(
    ("blocks", "text", "error"),
    [
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "t", "invalid_blocks"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 3001}]}], "t", "invalid_blocks"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51, "t", "invalid_blocks"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "t", "invalid_blocks"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}], "t", "invalid_blocks"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}], "t", "invalid_blocks"),
        (None, "x" * 40_001, "msg_too_long"),
    ],
)
async def test_the_fake_refuses_what_slack_refuses(slack, web_client, blocks, text, error):
    with pytest.raises(SlackApiError) as refused:
        await web_client.chat_postMessage(channel="C1", text=text, blocks=blocks)
    assert refused.value.response["error"] == error
    assert slack.refused and slack.thread_posts("C1", None)  # recorded as a call, and as refused
    slack.refused.clear()  # refused on purpose here; the fixture fails any other test that sees one
