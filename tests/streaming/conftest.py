"""Fixtures for the streamed-answer tests: fake Slack, fake LLM, a real agent with a real sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.agent import Agent
from core.llm import LLMClient
from core.review.reviewer import Reviewer
from sandbox import Sandbox
from tests.core.conftest import make_settings, sandbox, sandbox_config
from tests.fakes.openai_fake import FakeOpenAI
from tests.slack.conftest import slack, web_client

__all__ = ["sandbox", "sandbox_config", "slack", "web_client"]


@pytest.fixture
async def llm_fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def agent(llm_fake: FakeOpenAI, sandbox: Sandbox) -> AsyncIterator[Agent]:
    client = LLMClient(make_settings(llm_fake.base_url), backoff_s=0.01)
    yield Agent(client, Reviewer(client), sandbox)
    await client.aclose()
