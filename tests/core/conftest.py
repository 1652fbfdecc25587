"""Fixtures for the agent core: a scripted OpenAI-compatible server, a real LLM client, a scripted runner.

The real sandbox fixtures are here too, for the end-to-end tests that import them (tests/e2e, ...).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.llm import LLMClient
from core.settings import Settings
from sandbox import Sandbox, SandboxConfig
from tests.fake_runner import FakeRunner
from tests.fakes.openai_fake import FakeOpenAI

TEST_KEY = "sk-test-secret-4242"  # a fake key; tests assert it never leaks into messages or logs


def make_settings(base_url: str | None, **overrides: Any) -> Settings:
    """Settings pointing at a fake server, with short timeouts so failure tests stay fast."""
    values: dict[str, Any] = {
        "openai_base_url": base_url,
        "openai_api_key": TEST_KEY,
        "model": "openai/test-model",
        "llm_timeout_s": 5.0,
        "llm_retries": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[LLMClient]:
    llm_client = LLMClient(make_settings(fake.base_url), backoff_s=0.01)
    yield llm_client
    await llm_client.aclose()


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture(scope="module")
def sandbox_config() -> SandboxConfig:
    return dataclasses.replace(SandboxConfig.from_env(), pool_size=0)


@pytest.fixture
async def sandbox(sandbox_config: SandboxConfig) -> AsyncIterator[Sandbox]:
    async with Sandbox(sandbox_config) as sb:
        yield sb


def chat_is_consistent(messages: list[dict[str, Any]]) -> bool:
    """True when every assistant tool call is answered by a tool message before the next turn."""
    pending: set[str] = set()
    for m in messages:
        if m["role"] == "tool":
            if m["tool_call_id"] not in pending:
                return False
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            return False
        if m["role"] == "assistant":
            pending = {c["id"] for c in m.get("tool_calls") or []}
    return not pending


def tool_messages(body: dict[str, Any]) -> list[str]:
    """The tool outputs the model received in one request."""
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
