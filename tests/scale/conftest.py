"""Fixtures for tests of several replicas on one PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.slack_fake import FakeSlack
from tests.scale.holding_llm import HoldingOpenAI
from tests.store.backends import postgres_dsn, postgres_schema


@pytest.fixture
async def pg() -> AsyncIterator[str]:
    """A DSN on a fresh schema of the shared test server (skipped outside CI without one)."""
    async with postgres_schema(postgres_dsn()) as dsn:
        yield dsn


@pytest.fixture
async def llm() -> AsyncIterator[HoldingOpenAI]:
    async with HoldingOpenAI() as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
    assert not fake.refused, fake.refused


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
