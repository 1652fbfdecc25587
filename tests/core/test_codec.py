"""The history codec: exact round trips, and a restored history that sends the very same request bytes."""

from __future__ import annotations

import json
import time

import pytest
from mirascope import llm

from core.agent import Agent, TurnLimits
from core.codec import CodecError, decode_message, encode_message
from core.llm import LLMClient
from core.review.reviewer import Reviewer
from tests.fake_runner import FakeRunner, ran
from tests.fakes.openai_fake import FakeOpenAI
from tests.recording_sink import RecordingSink


def roundtrip(messages):
    return [decode_message(encode_message(m)) for m in messages]


async def test_a_real_exchange_round_trips_exactly_and_replays_byte_identical(
    fake: FakeOpenAI, client: LLMClient, runner: FakeRunner
):
    agent = Agent(client, Reviewer(client), runner)
    deadline = time.monotonic() + 30
    runner.enqueue(ran("π ≈ 3.14159\n", "{'ok': True}"))
    fake.enqueue_tool_call("print('π ≈', 3.14159)\nresult = {'ok': True}")
    fake.enqueue_text("Done: π ≈ 3.14159 ✓")
    first = await agent.run_turn([], "what is π?", RecordingSink(), TurnLimits(), deadline=deadline)

    restored = roundtrip(first.messages)
    assert restored == list(first.messages)
    assert [encode_message(m) for m in restored] == [encode_message(m) for m in first.messages]

    for history in (first.messages, restored):
        fake.enqueue_text("again")
        await agent.run_turn(history, "and twice that?", RecordingSink(), TurnLimits(), deadline=deadline)
    in_memory, from_store = fake.raw_bodies[-2], fake.raw_bodies[-1]
    assert in_memory == from_store
    assert b"call_1" in from_store  # the tool exchange really is part of the replayed history


def test_every_message_kind_and_part_round_trips():
    messages = [
        llm.messages.system("be brief"),
        llm.messages.user("hi ☃", name="ana"),
        llm.AssistantMessage(
            content=[
                llm.Thought(thought="hmm"),
                llm.Text(text="let me run"),
                llm.ToolCall(id="c1", name="t", args="{}"),
            ],
            name=None,
            provider_id="openai:completions",
            model_id="openai/m",
            provider_model_name="m:completions",
            raw_message={"role": "assistant", "tool_calls": [{"id": "c1"}]},
        ),
        llm.UserMessage(content=[llm.ToolOutput(id="c1", name="t", result={"n": [1, 2]})], name=None),
    ]
    assert roundtrip(messages) == messages


def test_a_tool_error_keeps_its_text():
    message = llm.UserMessage(
        content=[llm.ToolOutput(id="c", name="t", result="boom", error=llm.ToolExecutionError("boom"))]
    )
    (restored,) = roundtrip([message])
    assert str(restored.content[0].error) == "boom" and restored.content[0].result == "boom"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not json",
        "[]",
        '{"role": "robot", "content": []}',
        '{"role": "user"}',
        '{"role": "user", "name": null, "content": [{"type": "image"}]}',
        '{"v": 2, "role": "user", "name": null, "parts": [{"image": "x"}]}',
        '{"v": 2, "role": "user", "name": null, "parts": [{"result": {"id": "c"}}]}',
        '{"v": 2, "role": "system", "parts": []}',
    ],
)
def test_corrupt_rows_raise_a_codec_error(bad: str):
    with pytest.raises(CodecError):
        decode_message(bad)


# Rows exactly as the first codec (v1: mirascope's own field names) stored them.
V1_ROWS = [
    '{"role":"system","content":{"type":"text","text":"be brief"}}',
    '{"role":"user","name":null,"content":[{"type":"text","text":"what is π?"}]}',
    '{"role":"assistant","name":null,"provider_id":"openai:completions","model_id":"openai/m",'
    '"provider_model_name":"m:completions","raw_message":{"role":"assistant","tool_calls":[{"id":"c1"}]},'
    '"content":[{"type":"text","text":"let me run"},'
    '{"type":"tool_call","id":"c1","name":"execute_code","args":"{\\"code\\": \\"result = 3.14\\"}"}]}',
    '{"role":"user","name":null,"content":[{"type":"tool_output","id":"c1","name":"execute_code",'
    '"result":"result = 3.14","error":"boom"}]}',
]


def test_a_thread_stored_by_the_first_codec_still_loads():
    system, question, step, output = (decode_message(row) for row in V1_ROWS)
    assert system == llm.messages.system("be brief")
    assert question.content == [llm.Text(text="what is π?")]
    assert step.content[1] == llm.ToolCall(id="c1", name="execute_code", args='{"code": "result = 3.14"}')
    assert step.raw_message == {"role": "assistant", "tool_calls": [{"id": "c1"}]}
    assert output.content[0].result == "result = 3.14" and str(output.content[0].error) == "boom"
    # Written back, they take the new format and read the same.
    assert [decode_message(encode_message(m)) for m in (system, question, step, output)] == [
        system,
        question,
        step,
        output,
    ]


def test_rows_are_a_small_versioned_record_not_mirascope_fields():
    step = decode_message(V1_ROWS[2])
    doc = json.loads(encode_message(step))
    assert doc["v"] == 2 and doc["role"] == "assistant"
    assert doc["parts"][0] == {"text": "let me run"}
    assert doc["parts"][1]["call"]["name"] == "execute_code"
    assert "content" not in doc and "type" not in json.dumps(doc["parts"])


def test_a_row_from_a_newer_format_is_refused_clearly():
    with pytest.raises(CodecError, match="v3"):
        decode_message('{"v": 3, "role": "user", "parts": []}')
