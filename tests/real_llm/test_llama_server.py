"""The LLM path against a real OpenAI-compatible server (llama.cpp's llama-server, SmolLM2-135M-Instruct).

Each test names the finding of issue 13 it guards. Where a tiny model would not reliably produce the case
by itself, the test steers the request (see `Steering`), never the response.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from mirascope import llm

from bot.doctor import endpoint_lines
from core.agent import Agent, TurnLimits
from core.codec import decode_message
from core.llm import LLMClient, LLMFailure
from core.review.reviewer import Reviewer
from core.tools import SYSTEM_PROMPT, execute_code
from sandbox import Sandbox
from tests.real_llm.conftest import MODEL, LlamaServer, Steering, real_settings
from tests.recording_sink import RecordingSink

# Each test makes a few generations of a 135M model: seconds on an idle machine, far longer on a loaded
# 2-core one. The deadlines inside are generous; this only stops a hang.
pytestmark = pytest.mark.timeout(600)

BROKEN_ARGS = '{"code": "print(1)\nprint(2)'  # a raw newline inside a string, as a tiny model writes it
SAFE = "result = sum(range(10))"


def stored_row(raw: bool) -> str:
    """An assistant tool call as versions before the fix stored it: arguments verbatim, content null."""
    call = {
        "id": "call_7",
        "type": "function",
        "function": {"name": "execute_code", "arguments": BROKEN_ARGS},
    }
    doc = {
        "role": "assistant",
        "name": None,
        "provider_id": "openai:completions",
        "model_id": f"openai/{MODEL}",
        "provider_model_name": MODEL,
        "raw_message": {"role": "assistant", "content": None, "tool_calls": [call]} if raw else None,
        "content": [{"type": "tool_call", "id": "call_7", "name": "execute_code", "args": BROKEN_ARGS}],
    }
    return json.dumps(doc)


def poisoned_history(raw: bool) -> list[llm.Message]:
    output = llm.ToolOutput(id="call_7", name="execute_code", result="Invalid arguments: not JSON")
    return [
        llm.messages.user("print one and two"),
        decode_message(stored_row(raw)),
        llm.messages.user([output]),
        llm.messages.assistant("Sorry, that failed.", model_id=f"openai/{MODEL}", provider_id=None),
    ]


async def agent_request(client: LLMClient, history: list[llm.Message], question: str) -> None:
    """Send the request the agent sends for a new question (tools offered), through the client's retries.

    A reply cut at max_tokens still means the server accepted the request, which is all these tests ask.
    """
    model = client.model("agent")
    messages = [llm.messages.system(SYSTEM_PROMPT), *history, llm.messages.user(question)]
    ctx = llm.Context(deps=None)
    try:
        await client.call(
            lambda: model.context_call_async(messages, ctx=ctx, tools=[execute_code]),
            deadline=time.monotonic() + 240,
        )
    except LLMFailure as exc:
        if exc.kind != "cut":
            raise


@pytest.mark.parametrize("raw", [True, False], ids=["raw-message-kept", "re-encoded"])
async def test_1_a_stored_broken_tool_call_does_not_poison_the_thread(
    llama_server: LlamaServer, steering: Steering, raw: bool
):
    client = LLMClient(real_settings(llama_server), backoff_s=0.01)
    try:
        await agent_request(client, poisoned_history(raw), "Say hello.")
    finally:
        await client.aclose()
    assert steering.statuses == [200]  # one request, accepted: before the fix, 500 three times
    (assistant,) = [m for m in steering.sent[0]["messages"] if m.get("tool_calls")]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"])  # a JSON object
    assert assistant["content"] == ""


def _break_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """Re-create the poisoned request below every fix: one tool call with non-JSON arguments."""
    for m in body["messages"]:
        for call in m.get("tool_calls") or []:
            call["function"]["arguments"] = BROKEN_ARGS
    return body


async def test_2_a_request_the_server_never_accepts_is_told_apart_and_not_retried(
    llama_server: LlamaServer, steering: Steering, caplog: pytest.LogCaptureFixture
):
    steering.rewrite = _break_arguments
    client = LLMClient(real_settings(llama_server), backoff_s=0.01)
    caplog.set_level(logging.WARNING, logger="core.llm")
    try:
        with pytest.raises(LLMFailure) as info:
            await agent_request(client, poisoned_history(raw=True), "Say hello.")
    finally:
        await client.aclose()
    assert steering.statuses == [500]  # llama-server answers 500, and it is asked once, not three times
    assert info.value.kind == "rejected" and not info.value.retryable
    assert "rejected the request" in info.value.user_message and "try again" not in info.value.user_message
    assert "Failed to parse tool call arguments as JSON" in caplog.text  # the server's reason, in the log


def _refuse_json_schema(body: dict[str, Any]) -> dict[str, Any]:
    """Ask for json_schema the way llama-cpp-python's server refuses it (llama-server then says why)."""
    if (body.get("response_format") or {}).get("type") == "json_schema":
        body["response_format"] = {"type": "json_schema_unsupported"}
    return body


async def test_3_the_review_falls_back_when_json_schema_is_refused(
    llama_server: LlamaServer, steering: Steering
):
    steering.rewrite = _refuse_json_schema
    # The 135M model fills JSON object mode with other keys and rambles in tool mode (llama-server does not
    # force the format tool): a small budget keeps those attempts short. Remembering per model is covered
    # against the fake (tests/llm), as it takes more generations than it proves here.
    client = LLMClient(real_settings(llama_server, review_max_tokens=48), backoff_s=0.01)
    try:
        verdict, _ = await Reviewer(client).review(SAFE, "standard", deadline=time.monotonic() + 240)
    finally:
        await client.aclose()
    formats = [(b.get("response_format") or {}).get("type") for b in steering.sent]
    assert formats[0] == "json_schema_unsupported" and steering.statuses[0] == 400
    assert formats[1] == "json_object" and steering.statuses[1] == 200  # fell back instead of skipping
    assert verdict.checks[-1] != "llm"  # the verdict never claims the strict path it did not use


async def test_3_strict_json_schema_verdicts_come_back_from_the_real_server(
    llama_server: LlamaServer, steering: Steering
):
    client = LLMClient(real_settings(llama_server), backoff_s=0.01)
    try:
        verdict, tokens = await Reviewer(client).review(SAFE, "standard", deadline=time.monotonic() + 240)
    finally:
        await client.aclose()
    assert verdict.checks == ("static", "llm") and tokens > 0  # grammar-constrained: parsed first time
    assert steering.sent[0]["response_format"]["type"] == "json_schema"
    assert steering.sent[0]["max_tokens"] == 160


async def test_4_tools_are_offered_with_tool_choice_auto_and_accepted(
    llama_server: LlamaServer, steering: Steering
):
    client = LLMClient(real_settings(llama_server), backoff_s=0.01)
    try:
        await agent_request(client, [], "Use the execute_code tool to print 6*7.")
    finally:
        await client.aclose()
    assert steering.sent[0]["tool_choice"] == "auto" and steering.statuses == [200]


async def test_5_a_reply_cut_at_max_tokens_is_told_to_the_user(
    llama_server: LlamaServer, steering: Steering, sandbox: Sandbox
):
    client = LLMClient(real_settings(llama_server, max_tokens=16), backoff_s=0.01)
    agent = Agent(client, Reviewer(client), sandbox)
    sink = RecordingSink()
    try:
        outcome = await agent.run_turn(
            [], "Write a long story about a dragon.", sink, TurnLimits(), deadline=time.monotonic() + 240
        )
    finally:
        await client.aclose()
    assert steering.sent[0]["max_tokens"] == 16 and len(steering.sent) == 1  # not retried into the limit
    assert outcome.answer == "" and outcome.error is not None and "cut off" in outcome.error
    assert "CODEBOT_MAX_TOKENS" in outcome.error and sink.answers == []


async def test_5_a_cut_verdict_is_not_retried(llama_server: LlamaServer, steering: Steering):
    client = LLMClient(real_settings(llama_server, review_max_tokens=16), backoff_s=0.01)
    try:
        verdict, _ = await Reviewer(client).review(SAFE, "standard", deadline=time.monotonic() + 240)
    finally:
        await client.aclose()
    assert len(steering.sent) == 1 and steering.sent[0]["max_tokens"] == 16
    assert verdict.checks == ("static",) and "cut off" in verdict.reasons[0]


async def test_6_a_failed_turn_leaves_no_words_in_the_assistants_mouth(
    llama_server: LlamaServer, steering: Steering, sandbox: Sandbox
):
    first_only = {"n": 0}

    def reject_first(body: dict[str, Any]) -> dict[str, Any]:
        first_only["n"] += 1
        if first_only["n"] == 1:  # the server refuses the first request (an unknown response_format)
            body["response_format"] = {"type": "json_schema_unsupported"}
        return body

    steering.rewrite = reject_first
    client = LLMClient(real_settings(llama_server), backoff_s=0.01)
    agent = Agent(client, Reviewer(client), sandbox)
    deadline = time.monotonic() + 120
    try:
        failed = await agent.run_turn([], "hi", RecordingSink(), TurnLimits(), deadline=deadline)
        assert failed.error is not None
        await agent.run_turn(
            list(failed.messages), "Say hello.", RecordingSink(), TurnLimits(), deadline=deadline
        )
    finally:
        await client.aclose()
    assert steering.statuses[0] == 400 and steering.statuses[1] == 200
    second = steering.sent[1]["messages"]
    assert [m["role"] for m in second[1:]] == ["user", "user"]  # hi (unanswered), then the new question
    assert "no answer" not in json.dumps(second)


async def test_doctor_checks_the_real_endpoint(llama_server: LlamaServer):
    lines = await endpoint_lines(real_settings(llama_server, max_tokens=32))
    assert [line.split(":")[0] for line in lines] == [
        "[ok] llm/endpoint",
        "[ok] llm/tools",
        "[ok] llm/structured output",
    ]
    assert f"lists {MODEL}" in lines[0] and "strict JSON schema" in lines[2]
