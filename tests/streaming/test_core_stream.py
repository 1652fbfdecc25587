"""The core streams the agent's replies: the answer reaches the sink as growing drafts, then in full."""

from __future__ import annotations

import time

from core.agent import Agent, TurnLimits
from core.types import AnswerReply, Progress
from tests.fakes.openai_fake import FakeOpenAI
from tests.recording_sink import RecordingSink

ANSWER = "The answer is 42.\nIt was computed by multiplying six by seven,\nwhich the program printed."


class DraftSink(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.drafts: list[str] = []

    async def answer_draft(self, text: str) -> None:
        self.drafts.append(text)


async def ask(agent: Agent, question: str) -> tuple[object, DraftSink]:
    sink = DraftSink()
    outcome = await agent.run_turn([], question, sink, TurnLimits(), deadline=time.monotonic() + 60)
    return outcome, sink


async def test_the_answer_arrives_as_growing_drafts_then_in_full(llm_fake: FakeOpenAI, agent: Agent):
    llm_fake.enqueue_tool_call("print(6 * 7)")
    llm_fake.enqueue_text(ANSWER)
    _, sink = await ask(agent, "what is 6*7?")
    assert sink.answers == [ANSWER]
    assert len(sink.drafts) >= 5  # one per streamed piece, not one at the end
    assert all(a and ANSWER.startswith(a) for a in sink.drafts) and sink.drafts[-1] == ANSWER
    assert all(len(a) < len(b) for a, b in zip(sink.drafts, sink.drafts[1:], strict=False))
    assert all(r["stream"] is True for r in llm_fake.agent_requests)  # both rounds streamed
    assert sink.progress_states[-1] is Progress.DONE


async def test_text_before_a_tool_call_is_withdrawn_as_a_draft(llm_fake: FakeOpenAI, agent: Agent):
    llm_fake.enqueue_tool_call_with_text("Let me compute that.", "print(6 * 7)")
    llm_fake.enqueue_text("It is 42.")
    _, sink = await ask(agent, "what is 6*7?")
    withdrawn = sink.drafts.index("")
    assert sink.drafts[withdrawn - 1] == "Let me compute that."
    assert sink.drafts[-1] == "It is 42." and sink.answers == ["It is 42."]


async def test_a_stream_that_breaks_is_asked_again_and_the_draft_starts_over(
    llm_fake: FakeOpenAI, agent: Agent
):
    llm_fake.enqueue_stream_cut(ANSWER, after_pieces=2)
    llm_fake.enqueue_text(ANSWER)
    _, sink = await ask(agent, "hello")
    assert sink.answers == [ANSWER]
    restart = next(
        i for i, (a, b) in enumerate(zip(sink.drafts, sink.drafts[1:], strict=False)) if len(b) < len(a)
    )
    assert sink.drafts[restart] == ANSWER[:16]  # two pieces of 8 characters, then the connection broke
    assert sink.drafts[-1] == ANSWER


async def test_a_reply_cut_at_max_tokens_is_not_posted_as_the_answer(llm_fake: FakeOpenAI, agent: Agent):
    llm_fake.enqueue_text("This answer goes on and on and", finish="length")
    _, sink = await ask(agent, "tell me everything")
    assert sink.answers == [] and sink.drafts  # it was shown as a draft ...
    assert "cut off" in sink.notices[-1].text  # ... and the turn ended with a notice saying why
    assert sink.of(AnswerReply) == []


async def test_with_streaming_off_the_model_is_asked_in_one_piece(llm_fake: FakeOpenAI, sandbox):
    from core.llm import LLMClient
    from core.review.reviewer import Reviewer
    from tests.core.conftest import make_settings

    settings = make_settings(llm_fake.base_url, stream=False)
    client = LLMClient(settings, backoff_s=0.01)
    try:
        agent = Agent(client, Reviewer(client), sandbox, stream=settings.stream)
        llm_fake.enqueue_text(ANSWER)
        _, sink = await ask(agent, "hello")
    finally:
        await client.aclose()
    assert sink.answers == [ANSWER] and sink.drafts == []
    assert "stream" not in llm_fake.agent_requests[-1]
