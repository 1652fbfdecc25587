"""Who is a Slack workspace admin: users.info, cached briefly."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.thread import SLACK_FAILURES, slack_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserInfo:
    """What the bot needs to know about a Slack user."""

    id: str
    name: str = ""
    is_admin: bool = False  # workspace admin, owner or primary owner


class UserDirectory:
    """Looks users up with users.info and remembers the answer for `ttl_s` seconds."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl_s: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, UserInfo]] = OrderedDict()

    async def lookup(self, user_id: str) -> UserInfo:
        """Return the user's name and role; a failed lookup counts as a non-admin and is not cached."""
        hit = self._cache.get(user_id)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        try:
            resp = await self._client.users_info(user=user_id)
        except SLACK_FAILURES as exc:
            log.warning("users.info failed for %s: %s", user_id, slack_error(exc))
            return UserInfo(user_id)
        info = _user_info(user_id, resp.get("user") or {})
        self._cache[user_id] = (self._clock(), info)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return info


def _user_info(user_id: str, user: dict) -> UserInfo:
    profile = user.get("profile") or {}
    name = profile.get("display_name") or user.get("real_name") or user.get("name") or ""
    admin = any(bool(user.get(k)) for k in ("is_admin", "is_owner", "is_primary_owner"))
    return UserInfo(user_id, str(name), admin and not user.get("deleted"))
