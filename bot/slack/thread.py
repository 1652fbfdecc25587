"""The bot's own messages in one Slack thread: posted, updated and deleted, failures absorbed.

The steps, the fallback status message and the answer each keep one message up to date; this is the one
place that talks chat.postMessage / chat.update / chat.delete for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.events import Target

log = logging.getLogger(__name__)

# Failures the sink absorbs: the turn's bookkeeping must go on even when Slack misbehaves.
SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def slack_error(exc: BaseException) -> str:
    """Name a Slack failure briefly, without request details (which could carry tokens)."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__


class ThreadMessages:
    """Posts, updates and deletes messages in `target`'s thread; Slack's failures are logged as `what`."""

    def __init__(self, client: AsyncWebClient, target: Target, what: str) -> None:
        self._client = client
        self._target = target
        self._what = what

    async def post(self, text: str, blocks: Sequence[dict[str, Any]], **extra: Any) -> str | None:
        """Post one message; return its ts (None when Slack refused it)."""
        thread = {"thread_ts": self._target.thread_ts} if self._target.thread_ts else {}
        resp = await self.call(
            self._client.chat_postMessage,
            channel=self._target.channel,
            text=text,
            blocks=list(blocks),
            **thread,
            **extra,
        )
        return (str(resp.get("ts") or "") or None) if resp is not None else None

    async def update(self, ts: str, text: str, blocks: Sequence[dict[str, Any]]) -> None:
        await self.call(
            self._client.chat_update, channel=self._target.channel, ts=ts, text=text, blocks=list(blocks)
        )

    async def delete(self, ts: str) -> None:
        await self.call(self._client.chat_delete, channel=self._target.channel, ts=ts)

    async def call(self, fn: Any, **kwargs: Any) -> Any:
        """Await one Web API call; None when it failed (logged)."""
        try:
            return await fn(**kwargs)
        except SLACK_FAILURES as exc:
            log.warning("slack %s failed in %s: %s", self._what, self._target.channel, slack_error(exc))
            return None
