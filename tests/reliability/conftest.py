"""Fixtures for the reliability tests: a fake Slack on 127.0.0.1 (the fake LLM comes with each stack)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.slack_fake import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
    # Real Slack would have refused these payloads: a test must not pass on a message nobody saw.
    assert not fake.refused, fake.refused
