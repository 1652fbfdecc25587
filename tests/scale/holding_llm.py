"""A fake LLM that holds chosen questions until the test lets them go (a turn "mid-answer" on demand)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.fakes.openai_fake import FakeOpenAI


class HoldingOpenAI(FakeOpenAI):
    """FakeOpenAI whose agent requests whose newest user message contains a marker wait for release."""

    def __init__(self) -> None:
        super().__init__()
        self._holds: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}

    def hold(self, marker: str) -> None:
        """Hold every request whose newest user message contains `marker` until release(marker)."""
        self._holds[marker] = (asyncio.Event(), asyncio.Event())

    async def reached(self, marker: str, timeout_s: float = 60.0) -> None:
        """Wait until a request carrying `marker` is being held."""
        await asyncio.wait_for(self._holds[marker][0].wait(), timeout_s)

    def release(self, marker: str) -> None:
        self._holds[marker][1].set()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        last = _newest_user_text(await request.read())
        for marker, (arrived, released) in self._holds.items():
            if marker in last:
                arrived.set()
                await released.wait()
        return await super()._chat(request)


def _newest_user_text(raw: bytes) -> str:
    try:
        body: Any = json.loads(raw)
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
    except (ValueError, AttributeError, TypeError):
        return ""
    return content if isinstance(content, str) else json.dumps(content)
