"""The lean client sends exactly the body the SDK would, and keeps the SDK's other paths working."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai._base_client
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from core.lean_client import LeanAsyncOpenAI, compatible_request
from tests.fakes.openai_fake import FakeOpenAI

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_code",
            "description": "Run Python",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
        },
    }
]
REQUEST: dict[str, Any] = {
    "model": "gpt-test",
    "messages": [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "what is the sqrt of 2"},
    ],
    "tools": TOOLS,
    "temperature": 0.2,
    "max_completion_tokens": 300,
}


async def sent_body(fake: FakeOpenAI, client: AsyncOpenAI, **request: Any) -> dict[str, Any]:
    fake.enqueue_text("ok")
    await client.chat.completions.create(**request)
    body: dict[str, Any] = json.loads(fake.raw_bodies[-1])
    return body


async def test_the_body_is_the_one_the_sdk_sends(fake: FakeOpenAI):
    bare = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    lean = LeanAsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    try:
        expected = await sent_body(fake, bare, **compatible_request(REQUEST))
        assert await sent_body(fake, lean, **REQUEST) == expected
        assert expected["messages"] == REQUEST["messages"] and expected["tool_choice"] == "auto"
    finally:
        await bare.close()
        await lean.close()


async def test_a_callers_extra_body_still_reaches_the_server(fake: FakeOpenAI):
    lean = LeanAsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    try:
        body = await sent_body(fake, lean, **REQUEST, extra_body={"cache_prompt": True})
        assert body["cache_prompt"] is True and body["messages"] == REQUEST["messages"]
    finally:
        await lean.close()


async def test_with_raw_response_is_the_sdks_own(fake: FakeOpenAI):
    lean = LeanAsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    try:
        fake.enqueue_text("raw")
        raw = await lean.chat.completions.with_raw_response.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.http_response.status_code == 200
        assert raw.parse().choices[0].message.content == "raw"
    finally:
        await lean.close()


async def streamed(fake: FakeOpenAI, client: AsyncOpenAI) -> list[dict[str, Any]]:
    stream = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], tools=TOOLS, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [chunk.model_dump(exclude_unset=True) async for chunk in stream]
    return [{**c, "id": "numbered by the fake"} for c in chunks]


async def test_streamed_chunks_are_the_ones_the_sdk_parses(fake: FakeOpenAI):
    bare = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    lean = LeanAsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    try:
        for _ in (bare, lean):
            fake.enqueue_tool_call("print(6 * 7)", call_id="call_1")
            fake.enqueue_text("The answer is 42.")
        runs = [await streamed(fake, client) for client in (bare, lean) for _ in range(2)]
        assert runs[2:] == runs[:2]
        assert any(c["choices"] and c["choices"][0]["delta"].get("tool_calls") for c in runs[0])
        assert runs[0][-1]["usage"]["total_tokens"] > 0 and len(runs[1]) > 2
    finally:
        await bare.close()
        await lean.close()


BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}
USUAL = {**BASE, "choices": [{"index": 0, "delta": {"content": " the"}, "finish_reason": None}]}
UNUSUAL = [  # what OpenAI-compatible servers send besides OpenAI's own shape
    {**BASE, "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "eos"}]},
    {**BASE, "object": "chat.completion", "choices": [{"index": 0, "delta": {"content": "x"}}]},
    {**BASE, "choices": [{"index": 0, "delta": {"content": "x", "reasoning_content": "y"}}], "timings": {}},
    {**BASE, "created": 1.0, "choices": [{"index": "0", "delta": {"content": "x"}}]},  # kept as sent
    {"choices": [{"delta": {"content": "x"}}]},
]


@pytest.mark.parametrize("data", [USUAL, *UNUSUAL])
def test_a_chunk_parses_as_the_sdk_parses_it(data: dict[str, Any]):
    response = httpx.Response(200, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    parsed = [
        cls(api_key="sk-test")._process_response_data(
            data=data, cast_to=ChatCompletionChunk, response=response
        )
        for cls in (AsyncOpenAI, LeanAsyncOpenAI)
    ]
    assert type(parsed[0]) is type(parsed[1]) is ChatCompletionChunk
    assert parsed[0].to_json(warnings=False) == parsed[1].to_json(warnings=False)
    assert parsed[0].model_dump(exclude_unset=True, warnings=False) == parsed[1].model_dump(
        exclude_unset=True, warnings=False
    )
    assert parsed[0].choices[0].index == parsed[1].choices[0].index  # "0" stays "0", as the SDK keeps it


def test_a_usual_chunk_skips_the_sdks_slow_construct_and_an_unusual_one_takes_it(monkeypatch):
    # The SDK's construct walks the model in Python, ~90 us a chunk on the event loop for every token.
    def construct(**_: Any) -> Any:
        raise LookupError("the SDK's construct")

    monkeypatch.setattr(openai._base_client, "construct_type", construct)
    response = httpx.Response(200, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    lean = LeanAsyncOpenAI(api_key="sk-test")
    chunk = lean._process_response_data(data=USUAL, cast_to=ChatCompletionChunk, response=response)
    assert chunk.choices[0].delta.content == " the"
    with pytest.raises(LookupError):
        lean._process_response_data(data=UNUSUAL[0], cast_to=ChatCompletionChunk, response=response)
