"""Button presses the way Slack delivers them: a block_actions payload built from a message the bot posted.

Over HTTP Slack POSTs `payload=<json>` form-encoded and signed like any request (sign the exact body);
over Socket Mode it sends an `interactive` envelope with the payload as an object. Each press carries a
fresh trigger_id (usable once, for views.open) and a response_url for ephemeral answers.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from tests.fakes.slack_fake import FakeSlack


class Interactive:
    def __init__(self, slack: FakeSlack) -> None:
        self._slack = slack
        self._n = itertools.count(1)
        self._triggers: set[str] = set()

    def use_trigger(self, trigger_id: str) -> bool:
        """A trigger_id works once (Slack: `invalid_trigger_id` for an unknown or used one)."""
        if trigger_id in self._triggers:
            self._triggers.discard(trigger_id)
            return True
        return False

    def buttons(self, ts: str) -> list[dict[str, Any]]:
        """The buttons of one posted message as it stands now, each with its block_id."""
        message = self._slack.message_at(ts)
        blocks = message.blocks if message is not None else []
        return [
            {**e, "block_id": b.get("block_id", "")}
            for b in blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
        ]

    def press(self, ts: str, action_id: str, user: str = "U123", value: str | None = None) -> dict[str, Any]:
        """The block_actions payload for `user` pressing the button `action_id` on message `ts`.

        `value` replaces the button's value, to forge a payload as an attacker could.
        """
        message = self._slack.message_at(ts)
        assert message is not None, f"no live message {ts}"
        button = next(b for b in self.buttons(ts) if b["action_id"] == action_id)
        n = next(self._n)
        trigger = f"{n}.{int(time.time())}.trigger"
        self._triggers.add(trigger)
        channel = message.channel
        action = {
            "type": "button",
            "action_id": action_id,
            "block_id": button["block_id"],
            "text": button["text"],
            "value": button.get("value", "") if value is None else value,
            "action_ts": f"{int(time.time())}.{n:06d}",
        }
        posted = {
            "type": "message",
            "user": self._slack.bot_user_id,
            "bot_id": "BBOT",
            "ts": ts,
            "text": message.text,
            "blocks": message.blocks,
        }
        container = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
        if message.thread_ts:
            posted["thread_ts"] = container["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": user.lower(),
                "name": user.lower(),
                "team_id": self._slack.team_id,
            },
            "api_app_id": "A1",
            "token": "legacy",
            "container": container,
            "trigger_id": trigger,
            "team": {"id": self._slack.team_id, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": "general"},
            "message": posted,
            "state": {"values": {}},
            "response_url": self._slack.response_url(f"a{n}"),
            "actions": [action],
        }

    def press_ephemeral(
        self, blocks: list[dict[str, Any]], channel: str, action_id: str, user: str = "U123"
    ) -> dict[str, Any]:
        """A press on an ephemeral message (a slash command's answer): Slack sends no `message` then."""
        button = next(
            {**e, "block_id": b.get("block_id", "")}
            for b in blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if e["action_id"] == action_id
        )
        n = next(self._n)
        trigger = f"{n}.{int(time.time())}.trigger"
        self._triggers.add(trigger)
        action = {k: button[k] for k in ("type", "action_id", "block_id", "text")}
        action |= {"value": button.get("value", ""), "action_ts": f"{int(time.time())}.{n:06d}"}
        ts = f"{int(time.time())}.{n:06d}"
        return {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": user.lower(),
                "name": user.lower(),
                "team_id": self._slack.team_id,
            },
            "api_app_id": "A1",
            "token": "legacy",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": True},
            "trigger_id": trigger,
            "team": {"id": self._slack.team_id, "domain": "fake"},
            "channel": {"id": channel, "name": "general"},
            "state": {"values": {}},
            "response_url": self._slack.response_url(f"a{n}"),
            "actions": [action],
        }

    @staticmethod
    def form(payload: dict[str, Any]) -> str:
        """The HTTP body Slack POSTs for an interaction (sign exactly this string)."""
        return urlencode({"payload": json.dumps(payload)})

    async def send(self, payload: dict[str, Any], envelope_id: str) -> None:
        """Deliver an interaction over Socket Mode."""
        await self._slack.ws_send(
            {
                "envelope_id": envelope_id,
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": payload,
            }
        )
