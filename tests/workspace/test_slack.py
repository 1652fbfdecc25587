"""`files` on Slack through the real slack-bolt app: `@codebot files` in the thread, or by thread link."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.slack_fake import FakeSlack
from tests.slack.payloads import mention
from tests.slack.stack import slack_stack
from tests.slack.test_commands import ack_text


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
    assert not fake.refused, fake.refused  # real Slack would have refused these payloads


async def test_files_by_mention_in_the_thread_and_by_link(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_tool_call("open('notes.txt', 'w').write('hello')\ncount = 3")
        s.llm.enqueue_text("Wrote it.")
        root = "1700000010.000100"
        await s.event(mention("write a note", ts=root))
        await s.slack.wait_for(lambda: "Wrote it." in s.thread("C1", root))
        await s.core.wait_idle(10)
        asked = len(s.llm.agent_requests)

        await s.event(mention("files", thread_ts=root))
        await s.slack.wait_for(lambda: any("notes.txt" in t for t in s.thread("C1", root)))
        assert len(s.llm.agent_requests) == asked  # a command, not a question
        assert "@codebot files" in ack_text(await s.command("files"))  # no thread named
        link = f"https://fake.slack.com/archives/C1/p{root.replace('.', '')}"
        listing = ack_text(await s.command(f"files {link}"))
        assert "notes.txt" in listing and "count" in listing, listing
