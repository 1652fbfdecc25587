"""Who may act on a Slack thread: members of its channel (conversations.members), admins always."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.thread import SLACK_FAILURES, slack_error

log = logging.getLogger(__name__)

MAX_PAGES = 20  # 20,000 members; past that the answer is "cannot tell", which refuses


async def is_member(client: AsyncWebClient, channel: str, user_id: str, *, page_size: int = 1000) -> bool:
    """True only when Slack confirms `user_id` is in `channel`; any failure to tell counts as no.

    Private channels the bot is not in answer channel_not_found, which is a no as well: the bot cannot
    vouch for a thread it cannot see.
    """
    cursor = ""
    for _ in range(MAX_PAGES):
        try:
            resp = await client.conversations_members(channel=channel, limit=page_size, cursor=cursor or None)
        except SLACK_FAILURES as exc:
            log.info("conversations.members failed for %s: %s", channel, slack_error(exc))
            return False
        if user_id in (resp.get("members") or []):
            return True
        cursor = str((resp.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return False
    log.warning("channel %s has more members than the bot checks; refusing", channel)
    return False
