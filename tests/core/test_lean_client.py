"""The lean client sends exactly the body the SDK would, and keeps the SDK's other paths working."""

from __future__ import annotations

import json
from typing import Any

from openai import AsyncOpenAI

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
