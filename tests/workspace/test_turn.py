"""A whole core (real store, sandbox and LLM client, fake model) with files attached to questions."""

from __future__ import annotations

from pathlib import Path

from bot.console.files import ConsoleFetcher, local_file
from core.types import AnswerReply, Author, Incoming, IncomingFile, NoticeReply, ResultReply
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.recording_sink import RecordingSink
from tests.workspace.conftest import KEY

ME = Author("U1", "ann")


async def test_a_file_sent_without_words_is_still_a_question(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text('{"answer": 42}')
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_tool_call("import json\nresult = json.load(open('data.json'))['answer']")
        fake.enqueue_text("It says 42.")
        sink = RecordingSink()
        incoming = Incoming(KEY, ME, "", "ev-1", (local_file(tmp_path / "data.json"),))
        assert (await core.submit(incoming, sink, ConsoleFetcher())).accepted
        await core.wait_idle(60)
    (result,) = sink.of(ResultReply)
    assert result.result.result == "42"
    assert sink.answers == ["It says 42."]
    assert "(attached: data.json)" in str(fake.agent_requests[0]["messages"])


async def test_a_file_the_platform_would_not_share_is_named_and_the_question_answered(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_text("Without the file: hello.")
        sink = RecordingSink()
        stub = IncomingFile("secret plan.pdf", ref="")
        await core.submit(Incoming(KEY, ME, "say hello", "ev-2", (stub,)), sink, ConsoleFetcher())
        await core.wait_idle(60)
    notices = [n.text for n in sink.of(NoticeReply)]
    assert any("`secret plan.pdf` cannot be downloaded" in n for n in notices), notices
    assert sink.of(AnswerReply)[-1].text == "Without the file: hello."
