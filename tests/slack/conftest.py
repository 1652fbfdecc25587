"""Fixtures for the Slack adapter tests: a fake Slack on 127.0.0.1 and a real Web API client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_fake import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
    # Real Slack would have refused these payloads: a test must not pass on a message nobody saw.
    assert not fake.refused, fake.refused


@pytest.fixture
async def web_client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(
            token="xoxb-test",
            base_url=slack.base_url,
            session=session,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
