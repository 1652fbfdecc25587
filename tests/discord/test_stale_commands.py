"""Commands the bot does not (or no longer) register get directions, not "failed on our side"."""

from __future__ import annotations

import pytest

from bot.discord.commands import FAILED_TEXT
from tests.discord.stack import discord_stack


async def _callback_text(s, payload) -> str:
    call = await s.fake.wait_for_call(lambda c: c.path.endswith(f"/{payload['token']}/callback"))
    assert call.json["data"]["flags"] == 64  # ephemeral: only the invoker sees the directions
    return call.json["data"]["content"]


@pytest.mark.parametrize(
    ("group", "sub", "options", "expect"),
    [
        ("codebot", "set", {"name": "timeout", "value": "30s"}, "`/codebot-admin set`"),
        ("codebot", "audit", {}, "`/codebot-admin audit`"),
        ("codebot-admin", "limits", {}, "`/codebot limits`"),
        ("codebot", "frobnicate", {}, "`/codebot help`"),
    ],
)
async def test_a_stale_or_unknown_subcommand_names_the_right_command(tmp_path, group, sub, options, expect):
    async with discord_stack(tmp_path) as s:
        text = await _callback_text(s, await s.fake.slash(group, sub, options, user=s.alice))
    assert text != FAILED_TEXT and "failed on our side" not in text
    assert expect in text and len(text) < 300
