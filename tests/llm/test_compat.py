"""Issue 13 against the fake, which refuses what llama.cpp and llama-cpp-python refuse (see its docstring).

The same findings are proven against a real llama-server in tests/real_llm; these cover the paths a 135M
model cannot be steered into reliably and the llama-cpp-python behaviours llama-server does not share.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from mirascope import llm

from core.agent import Agent, TurnLimits
from core.codec import decode_message, encode_message
from core.history import trim_history
from core.llm import LLMClient, LLMFailure
from core.review.reviewer import Reviewer
from sandbox import Sandbox
from tests.core.conftest import make_settings
from tests.fakes.openai_fake import FakeOpenAI
from tests.real_llm.test_llama_server import BROKEN_ARGS, stored_row
from tests.recording_sink import RecordingSink

SAFE = "result = sum(range(10))"


async def turn(agent: Agent, question: str, history: list[llm.Message] | None = None):
    sink = RecordingSink()
    outcome = await agent.run_turn(
        history or [], question, sink, TurnLimits(), deadline=time.monotonic() + 30
    )
    return outcome, sink


async def test_1_a_broken_tool_call_does_not_break_the_rest_of_its_turn(
    fake: FakeOpenAI, client: LLMClient, sandbox: Sandbox
):
    fake.enqueue_raw_tool_call("execute_code", BROKEN_ARGS)
    fake.enqueue_text("Sorry, let me answer directly: 1 and 2.")
    outcome, _ = await turn(Agent(client, Reviewer(client), sandbox), "print one and two")

    assert outcome.error is None and outcome.answer.startswith("Sorry")  # the resumed request was accepted
    resent = fake.agent_requests[1]["messages"]
    (assistant,) = [m for m in resent if m.get("tool_calls")]
    args = json.loads(assistant["tool_calls"][0]["function"]["arguments"])
    assert args == {"invalid_arguments": BROKEN_ARGS} and assistant["content"] == ""
    # What is stored is valid too, so no later request of the thread can carry the broken text.
    stored = [decode_message(encode_message(m)) for m in outcome.messages]
    calls = [p for m in stored for p in m.content if getattr(p, "type", "") == "tool_call"]
    assert [json.loads(c.args) for c in calls] == [args]


@pytest.mark.parametrize("raw", [True, False])
def test_1_rows_stored_by_older_versions_are_repaired_on_load(raw: bool):
    message = decode_message(stored_row(raw))
    (call,) = message.content
    assert json.loads(call.args) == {"invalid_arguments": BROKEN_ARGS}
    if raw:
        assert json.loads(message.raw_message["tool_calls"][0]["function"]["arguments"]) == json.loads(
            call.args
        )


async def test_2_a_500_that_says_the_request_is_invalid_is_not_retried(
    fake: FakeOpenAI, client: LLMClient, caplog: pytest.LogCaptureFixture
):
    fake.enqueue_error(500, "Failed to parse tool call arguments as JSON: parse error at line 2")
    caplog.set_level(logging.WARNING, logger="core.llm")
    with pytest.raises(LLMFailure) as info:
        await client.call(lambda: client.model("agent").call_async("hi"), deadline=time.monotonic() + 10)
    assert len(fake.requests) == 1 and info.value.kind == "rejected"
    assert "rejected the request" in info.value.user_message
    assert "Failed to parse tool call arguments" in caplog.text


async def test_2_a_busy_service_is_still_retried_and_says_so(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_error(503, "Loading model")
    fake.enqueue_error(500, "slot unavailable")
    fake.enqueue_text("ok")
    response = await client.call(
        lambda: client.model("agent").call_async("hi"), deadline=time.monotonic() + 10
    )
    assert response.text() == "ok" and len(fake.requests) == 3


async def test_3_a_refused_json_schema_falls_back_to_json_object_and_is_remembered(
    fake: FakeOpenAI, client: LLMClient
):
    fake.refused_formats = ("json_schema",)
    reviewer = Reviewer(client)
    first, _ = await reviewer.review(SAFE, "standard", deadline=time.monotonic() + 10)
    second, _ = await reviewer.review("result = 2", "standard", deadline=time.monotonic() + 10)

    assert first.allowed and first.checks == ("static", "llm (JSON object mode)")
    assert second.checks == first.checks
    kinds = [(r.get("response_format") or {}).get("type") for r in fake.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # json_schema was asked for once


async def test_3_then_tool_mode_then_json_in_text(fake: FakeOpenAI, client: LLMClient):
    fake.refused_formats = ("json_schema", "json_object")
    reviewer = Reviewer(client)
    tool, _ = await reviewer.review(SAFE, "standard", deadline=time.monotonic() + 10)
    assert tool.checks == ("static", "llm (tool mode)")

    # For a model whose tool mode never worked, two unparseable replies there hand over to text mode.
    fake.enqueue_verdict_raw('{"allowed": "maybe"}')
    fake.enqueue_verdict_raw("no idea")
    fake.enqueue_verdict(False, "high", ["reads secrets"])
    text, _ = await Reviewer(client).review(SAFE, "standard", deadline=time.monotonic() + 10)
    assert not text.allowed and text.checks == ("static", "llm (JSON in text)")
    last = fake.review_requests[-1]
    assert "tools" not in last and "response_format" not in last
    assert "Reply with only a JSON object" in last["messages"][-1]["content"]


async def test_4_tools_work_on_a_server_that_reads_a_missing_tool_choice_as_none(
    fake: FakeOpenAI, client: LLMClient, sandbox: Sandbox
):
    fake.missing_tool_choice_is_none = True  # llama-cpp-python's server
    fake.enqueue_tool_call("result = 6 * 7")
    fake.enqueue_text("42")
    outcome, _ = await turn(Agent(client, Reviewer(client), sandbox), "6 times 7?")
    assert len(outcome.steps) == 1 and outcome.answer == "42"
    assert fake.agent_requests[0]["tool_choice"] == "auto"


async def test_5_both_calls_are_bounded_by_the_settings(fake: FakeOpenAI):
    client = LLMClient(make_settings(fake.base_url, max_tokens=300, review_max_tokens=50))
    await Reviewer(client).review(SAFE, "standard", deadline=time.monotonic() + 10)
    await client.call(lambda: client.model("agent").call_async("hi"), deadline=time.monotonic() + 10)
    assert [r["max_tokens"] for r in fake.requests] == [50, 300]
    await client.aclose()


async def test_5_a_cut_answer_is_not_posted_as_complete(
    fake: FakeOpenAI, client: LLMClient, sandbox: Sandbox
):
    fake.enqueue_text("Once upon a time there was a dragon who", finish="length")
    outcome, sink = await turn(Agent(client, Reviewer(client), sandbox), "tell a long story")
    assert sink.answers == [] and outcome.error is not None and "cut off" in outcome.error
    assert "CODEBOT_MAX_TOKENS=2048" in outcome.error and len(fake.requests) == 1


def test_6_failure_notes_stored_by_older_versions_are_not_read_back():
    note = llm.messages.assistant(
        "(no answer: The language model rejected the request.)", model_id="m", provider_id=None
    )
    reply = llm.messages.assistant("Hello!", model_id="m", provider_id=None)
    history = [llm.messages.user("hi"), note, llm.messages.user("hello?"), reply]
    assert trim_history(history, 40, 8000) == [history[0], history[2], reply]
