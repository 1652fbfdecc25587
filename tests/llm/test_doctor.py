"""`codebot doctor` probes an OpenAI-compatible endpoint: reachable, model listed, tools, structured."""

from __future__ import annotations

import socket

from bot.doctor import endpoint_lines
from tests.core.conftest import make_settings
from tests.fakes.openai_fake import FakeOpenAI


async def test_a_working_endpoint_passes_every_check(fake: FakeOpenAI):
    fake.model_ids = ["other", "test-model"]
    lines = await endpoint_lines(make_settings(fake.base_url))
    assert [line[:4] for line in lines] == ["[ok]"] * 3
    assert "lists test-model" in lines[0] and "strict JSON schema" in lines[2]
    assert fake.requests[0]["tools"][0]["function"]["name"] == "execute_code"


async def test_an_unlisted_model_and_a_refused_json_schema_are_named(fake: FakeOpenAI):
    fake.refused_formats = ("json_schema",)
    lines = await endpoint_lines(make_settings(fake.base_url))
    assert lines[0].startswith("[!!] llm/endpoint") and "fake" in lines[0] and "CODEBOT_MODEL" in lines[0]
    assert lines[2].startswith("[ok]") and "JSON object mode" in lines[2]


async def test_an_unreachable_endpoint_stops_at_the_first_check():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines = await endpoint_lines(make_settings(f"http://127.0.0.1:{port}/v1", llm_retries=0))
    assert len(lines) == 1 and lines[0].startswith("[!!]") and "not reachable" in lines[0]


async def test_openai_itself_is_not_probed():
    assert await endpoint_lines(make_settings(None)) == []
