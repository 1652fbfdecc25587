"""Slack file shares end to end: the fake's file host -> the bot's fetcher -> the thread's workspace ->
code in the real sandbox; refusals reach the thread and the question is still answered."""

from __future__ import annotations

from tests.fakes.slack_fake import FakeSlack
from tests.slack.payloads import mention, message
from tests.slack.stack import slack_stack

CSV = b"city,temp\nOslo,4\nLima,19\nCairo,23\n"
MEAN = "import pandas as pd\ndf = pd.read_csv('temps.csv')\nresult = df['temp'].mean()"
FOLLOW = "result = (int(df['temp'].max()), open('x.csv').read().strip())"
ROOT = "1700000001.000100"


def said(s, channel: str = "C1", thread: str = ROOT) -> str:
    """What the bot's messages in the thread read now (steps are edited in place): text and blocks."""
    shown = s.slack.thread_messages(channel, thread)
    return " ".join(f"{m.text} {m.blocks} {m.streamed}" for m in shown)


async def test_a_shared_csv_is_read_by_the_code_and_a_follow_up_builds_on_it(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call(MEAN)
        s.llm.enqueue_text("The mean temperature is 15.3.")
        body = mention("mean temperature?", ts=ROOT, files=[slack.share_file("temps.csv", CSV)])
        await s.event(body)
        await slack.wait_for(lambda: "The mean temperature is 15.3." in s.thread("C1", ROOT), 60)
        await s.core.wait_idle(30)
        assert "15.333333333333334" in said(s)

        s.llm.enqueue_tool_call(FOLLOW)
        s.llm.enqueue_text("Max 23.")
        share = message(
            "and the max?",
            thread_ts=ROOT,
            subtype="file_share",
            files=[slack.share_file("../../x.csv", b"hi")],
        )
        await s.event(share)
        await slack.wait_for(lambda: "Max 23." in s.thread("C1", ROOT), 60)
        await s.core.wait_idle(30)
        assert "(23, 'hi')" in said(s)  # df from turn 1; the file landed as x.csv in the workspace
        assert "temps.csv" in str(s.llm.agent_requests[-2]["messages"][0]["content"])
    assert {r.headers["Authorization"] for r in slack.file_requests} == {"Bearer xoxb-test-token"}


async def test_a_file_over_the_cap_is_refused_with_the_limit_named_and_the_question_answered(tmp_path, slack):
    async with slack_stack(tmp_path, slack, CODEBOT_LIMIT_FILE_SIZE="1") as s:
        s.llm.enqueue_tool_call("import os\nresult = sorted(os.listdir('.'))")
        s.llm.enqueue_text("Only the small one.")
        big = slack.share_file("big.csv", b"x" * (3 << 20), declared_size=100, chunked=True)
        body = mention("which files?", ts=ROOT, files=[big, slack.share_file("small.csv", CSV)])
        await s.event(body)
        await slack.wait_for(lambda: "Only the small one." in s.thread("C1", ROOT), 60)
        await s.core.wait_idle(30)
        text = said(s)
        assert "big.csv" in text and "1 MB limit per file (`file_size`)" in text, text
        assert "['small.csv']" in text


async def test_without_files_read_the_thread_is_told_and_still_answered(tmp_path):
    async with FakeSlack(bot_token="xoxb-some-other-token") as slack, slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("I could not open it.")
        body = mention("what is in this?", ts=ROOT, files=[slack.share_file("temps.csv", CSV)])
        await s.event(body)
        await slack.wait_for(lambda: "I could not open it." in s.thread("C1", ROOT), 60)
        await s.core.wait_idle(30)
        assert "I could not get `temps.csv` (Slack sent its sign-in page instead of the file" in said(s)
        assert "files:read" in said(s)
