"""LLM faults through the real openai SDK: retries, Retry-After, deadlines, and short user messages."""

from __future__ import annotations

import email.utils
import logging
import socket
import time

import pytest
from mirascope import llm

from core.llm import LLMClient, LLMFailure
from core.settings import ConfigError
from tests.core.conftest import TEST_KEY, make_settings
from tests.fakes.openai_fake import FakeOpenAI


async def ask(client: LLMClient, deadline_s: float = 10.0) -> str:
    model = client.model("agent")
    response = await client.call(lambda: model.call_async("hi"), deadline=time.monotonic() + deadline_s)
    return response.text()


async def test_429_with_retry_after_is_retried_after_the_asked_delay(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_error(429, retry_after=0.3)
    fake.enqueue_text("ok")
    start = time.monotonic()
    assert await ask(client) == "ok"
    assert time.monotonic() - start >= 0.3
    assert len(fake.requests) == 2


async def test_retry_after_as_an_http_date_is_honoured(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_error(429, retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))
    fake.enqueue_text("ok")
    start = time.monotonic()
    assert await ask(client) == "ok"
    assert time.monotonic() - start >= 0.9  # the date has one-second resolution


async def test_server_errors_are_retried(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_error(500)
    fake.enqueue_error(502)
    fake.enqueue_text("ok")
    assert await ask(client) == "ok"
    assert len(fake.requests) == 3


async def test_exhausted_retries_give_a_short_message(fake: FakeOpenAI, client: LLMClient):
    for _ in range(3):
        fake.enqueue_error(429)
    with pytest.raises(LLMFailure) as info:
        await ask(client)
    assert info.value.user_message == "The language model is rate-limiting us; try again in a minute."
    assert info.value.retryable and len(fake.requests) == 3  # llm_retries=2: three attempts, no SDK retries


async def test_retry_after_beyond_the_deadline_fails_at_once(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_error(429, retry_after=30)
    start = time.monotonic()
    with pytest.raises(LLMFailure, match="rate-limiting"):
        await ask(client, deadline_s=2)
    assert time.monotonic() - start < 1 and len(fake.requests) == 1


async def test_timeout_is_retried_then_reported(fake: FakeOpenAI):
    client = LLMClient(make_settings(fake.base_url, llm_timeout_s=0.3, llm_retries=1), backoff_s=0.01)
    for _ in range(2):
        fake.enqueue_delay(2)
        fake.enqueue_text("too late")
    start = time.monotonic()
    with pytest.raises(LLMFailure, match="did not answer in time"):
        await ask(client)
    assert len(fake.requests) == 2 and time.monotonic() - start < 1.5
    await client.aclose()


async def test_deadline_cuts_a_slow_call_short(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_delay(3)
    start = time.monotonic()
    with pytest.raises(LLMFailure, match="took too long"):
        await ask(client, deadline_s=0.4)
    assert time.monotonic() - start < 1


async def test_connection_refused_is_reported_plainly():
    with socket.socket() as s:  # a port that was just free and is now closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = LLMClient(make_settings(f"http://127.0.0.1:{port}/v1", llm_retries=1), backoff_s=0.01)
    with pytest.raises(LLMFailure) as info:
        await ask(client)
    assert info.value.user_message == "The language model could not be reached."
    await client.aclose()


async def test_rejected_key_is_not_retried_and_never_echoed(
    fake: FakeOpenAI, client: LLMClient, caplog: pytest.LogCaptureFixture
):
    fake.enqueue_error(401, body=f"Incorrect API key provided: {TEST_KEY}")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LLMFailure) as info:
        await ask(client)
    assert "OPENAI_API_KEY" in info.value.user_message and not info.value.retryable
    assert len(fake.requests) == 1
    assert fake.headers[0]["Authorization"] == f"Bearer {TEST_KEY}"
    assert TEST_KEY not in info.value.user_message
    assert caplog.records and all(TEST_KEY not in r.getMessage() for r in caplog.records)  # any logger


@pytest.mark.parametrize(("status", "text"), [(400, "rejected the request"), (404, "CODEBOT_MODEL")])
async def test_client_errors_are_not_retried(fake: FakeOpenAI, client: LLMClient, status: int, text: str):
    fake.enqueue_error(status)
    with pytest.raises(LLMFailure, match=text):
        await ask(client)
    assert len(fake.requests) == 1


async def test_a_garbled_body_is_retried(fake: FakeOpenAI, client: LLMClient):
    fake.enqueue_garbage()
    fake.enqueue_text("ok")
    assert await ask(client) == "ok"


async def test_base_url_uses_chat_completions_and_keeps_sampling_params(fake: FakeOpenAI):
    settings = make_settings(
        fake.base_url, model="openai/org/Qwen2.5-7B", temperature=0.3, openai_api_key=None
    )
    client = LLMClient(settings)
    await ask(client)
    body, headers = fake.requests[0], fake.headers[0]
    assert body["model"] == "org/Qwen2.5-7B"  # everything after the provider prefix
    assert body["temperature"] == 0.3 and "max_completion_tokens" not in body
    assert headers["Authorization"] == "Bearer not-needed"  # local servers need no key
    await client.aclose()


async def test_clients_do_not_share_endpoints():
    async with FakeOpenAI() as one, FakeOpenAI() as two:
        one.default_text, two.default_text = "from one", "from two"
        first, second = LLMClient(make_settings(one.base_url)), LLMClient(make_settings(two.base_url))
        assert await ask(first) == "from one" and await ask(second) == "from two"
        assert await ask(first) == "from one"
        await first.aclose()
        await second.aclose()


def test_openai_without_key_or_base_url_names_the_setting():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        LLMClient(make_settings(None, openai_api_key=None))


async def test_openai_with_key_uses_the_normal_provider():
    client = LLMClient(make_settings(None))
    assert isinstance(client.model("agent").provider, llm.providers.OpenAIProvider)
    assert client.model("review").model_id == "openai/test-model"
    await client.aclose()


async def test_the_fakes_load_switches_add_latency_and_errors(fake: FakeOpenAI, client: LLMClient):
    fake.latency = (0.2, 0.2)
    start = time.monotonic()
    assert await ask(client) == "done"
    assert time.monotonic() - start >= 0.2
    fake.latency, fake.error_rate = None, 1.0
    with pytest.raises(LLMFailure, match="having trouble"):
        await ask(client)
    await fake.wait_for_requests(4, timeout=1)
    assert fake.kinds == ["agent"] * 4


@pytest.mark.parametrize("field", ["model", "review_model"])
def test_a_model_id_without_provider_prefix_names_the_setting(field: str):
    name = "CODEBOT_MODEL" if field == "model" else "CODEBOT_REVIEW_MODEL"
    with pytest.raises(ConfigError, match=name):
        LLMClient(make_settings("http://127.0.0.1:1/v1", **{field: "gpt-4o"}))
