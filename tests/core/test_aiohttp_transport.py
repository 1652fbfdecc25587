"""The SDK's requests travel over aiohttp: proxies, compressed bodies and broken connections still behave."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from core.aiohttp_transport import AiohttpTransport
from core.llm import LLMClient, LLMFailure
from tests.core.conftest import make_settings
from tests.core.test_llm_errors import ask
from tests.fakes.openai_fake import FakeOpenAI

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_requests_go_through_the_proxy_the_environment_names(fake: FakeOpenAI, monkeypatch):
    # The LLM's host does not resolve; only the proxy (the fake, which serves absolute-form requests) can
    # answer, so an answer proves the request went through it.
    monkeypatch.setenv("HTTP_PROXY", fake.base_url.removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fake.enqueue_text("via the proxy")
    client = LLMClient(make_settings("http://llm.invalid/v1"))
    try:
        assert await ask(client) == "via the proxy"
    finally:
        await client.aclose()


async def test_no_proxy_hosts_are_reached_directly(fake: FakeOpenAI, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fake.enqueue_text("direct")
    client = LLMClient(make_settings(fake.base_url))
    try:
        assert await ask(client) == "direct"
    finally:
        await client.aclose()


async def test_a_gzip_body_is_decoded_once(serve):
    payload = {"answer": "décodé", "n": list(range(50))}

    async def gzipped(request: web.Request) -> web.Response:
        assert "gzip" in request.headers.get("Accept-Encoding", "")
        body = gzip.compress(json.dumps(payload).encode())
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)

    url = await serve(gzipped)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        response = await http.get(url + "/data")
    assert response.json() == payload


async def test_a_connection_cut_mid_answer_is_a_connection_failure(serve):
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "4000"})
        await response.prepare(request)
        await response.write(b'{"id": "chatcmpl-1", "choices": [')
        assert request.transport is not None
        request.transport.close()
        return response

    url = await serve(cut)
    client = LLMClient(make_settings(url + "/v1", llm_retries=0))
    try:
        with pytest.raises(LLMFailure) as info:
            await ask(client)
    finally:
        await client.aclose()
    assert info.value.user_message == "The language model could not be reached."
    assert info.value.retryable


async def test_a_silent_server_is_a_timeout_not_a_refusal(serve):
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="{}")

    url = await serve(silent)
    client = LLMClient(make_settings(url + "/v1", llm_retries=0, llm_timeout_s=0.3))
    try:
        with pytest.raises(LLMFailure) as info:
            await ask(client)
    finally:
        await client.aclose()
    assert info.value.user_message == "The language model did not answer in time; try again shortly."
