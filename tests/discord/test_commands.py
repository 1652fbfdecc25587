"""Slash commands through real discord.py interactions: admin checks, deferral, reset, deliberate sync."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from core.types import ThreadKey
from tests.discord.stack import bot_settings, discord_stack, running_bot
from tests.fakes.discord_fake import BASIC_PERMS, MANAGE_GUILD, VIEW_CHANNEL, FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack

EPHEMERAL = 64


async def _answer(s, payload) -> str:
    """The text the user saw for an interaction (immediate reply or deferred follow-up)."""
    token = payload["token"]
    call = await s.fake.wait_for_call(
        lambda c: (
            (c.path.endswith(f"/{token}/callback") and c.json["type"] == 4) or c.path.endswith(f"/{token}")
        )
    )
    return call.json["data"]["content"] if "data" in call.json else call.json["content"]


async def test_only_managers_and_configured_admins_can_set_limits(tmp_path):
    bob = "424242"
    async with discord_stack(tmp_path, CODEBOT_ADMIN_IDS=bob) as s:
        payload = await s.fake.slash(
            "codebot-admin", "set", {"name": "timeout", "value": "30s"}, user=s.alice
        )
        assert "Manage Server" in await _answer(s, payload)
        shown = await _answer(s, await s.fake.slash("codebot", "limits", user=s.alice))
        assert "30" not in shown.split("timeout", 1)[1].split("\n", 1)[0]

        manager = s.fake.user("mod")
        payload = await s.fake.slash(
            "codebot-admin", "set", {"name": "timeout", "value": "30s"}, user=manager, manager=True
        )
        assert "30" in await _answer(s, payload)
        operator = {**s.fake.user("bob"), "id": bob}  # no Manage Server, but listed in CODEBOT_ADMIN_IDS
        payload = await s.fake.slash(
            "codebot-admin", "set", {"name": "memory", "value": "512MB"}, user=operator
        )
        assert "512" in await _answer(s, payload)
        shown = await _answer(s, await s.fake.slash("codebot", "limits", user=s.alice))
        assert "30" in shown.split("timeout", 1)[1].split("\n", 1)[0]
        callbacks = s.fake.calls_to("POST", r"/interactions/\d+/[^/]+/callback")
        assert callbacks and all(c.json["data"]["flags"] == EPHEMERAL for c in callbacks)
        assert "Authorization" not in callbacks[0].headers  # interaction tokens, not the bot token


def _hold_write_lock(db: Path, seconds: float) -> None:
    """Another process holding the database's write lock (e.g. `codebot admin` exporting)."""
    con = sqlite3.connect(db, timeout=5)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("SELECT 1")
        time.sleep(seconds)
        con.rollback()
    finally:
        con.close()


async def test_a_slow_command_is_deferred_before_the_deadline(tmp_path):
    bot_kw = {"defer_after_s": 0.1}
    async with discord_stack(tmp_path, deadline_s=0.5, bot_kw=bot_kw) as s:
        locker = asyncio.create_task(asyncio.to_thread(_hold_write_lock, tmp_path / "codebot.db", 1.0))
        await asyncio.sleep(0.1)
        manager = s.fake.user("mod")
        payload = await s.fake.slash(
            "codebot-admin", "set", {"name": "steps", "value": "5"}, user=manager, manager=True
        )
        text = await _answer(s, payload)
        await locker
        [callback] = s.fake.calls_to("POST", rf"/interactions/\d+/{payload['token']}/callback")
        assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}  # deferred, ephemeral "thinking"
        [followup] = s.fake.calls_to("POST", rf"/webhooks/\d+/{payload['token']}")
        assert followup.t - callback.t >= 0.5  # the answer came after the 3 s-style deadline ...
        assert "5" in text and followup.json["flags"] == EPHEMERAL  # ... and still reached the user


async def test_reset_inside_a_thread_forgets_the_conversation(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_text("Noted: the secret word is pineapple.")
        msg = await s.ask("remember the word pineapple")
        await s.done(msg["id"])
        elsewhere = await _answer(s, await s.fake.slash("codebot", "reset", user=s.alice))
        assert "thread" in elsewhere.lower()
        payload = await s.fake.slash("codebot", "reset", user=s.alice, channel_id=int(msg["id"]))
        assert "pineapple" not in await _answer(s, payload)
        s.llm.enqueue_text("I don't know any word.")
        await s.ask("what was the word?", channel_id=int(msg["id"]))
        await s.done(msg["id"], turns=2)
        assert "pineapple" not in str(s.llm.agent_requests[-1]["messages"])


async def test_commands_sync_only_when_changed_or_requested(tmp_path):
    fake = FakeDiscord()
    await fake.start()
    global_sync = rf"/applications/{fake.app_id}/commands"
    try:
        async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url) as core:
            settings = bot_settings(tmp_path, fake)
            async with running_bot(core, settings):
                pass
            [first] = fake.calls_to("PUT", global_sync)
            by_name = {c["name"]: c for c in first.json}
            assert set(by_name) == {"codebot", "codebot-admin"}
            admin = by_name["codebot-admin"]
            assert admin["default_member_permissions"] == 32 and admin["contexts"] == [0]
            user_commands = {o["name"] for o in by_name["codebot"]["options"]}
            assert user_commands == {"help", "limits", "usage", "reset", "files"}
            async with running_bot(core, settings):
                pass
            assert len(fake.calls_to("PUT", global_sync)) == 1  # unchanged: no second sync
            async with running_bot(core, settings) as (bot, _):
                await bot.sync_commands(guild_id=fake.guild_id)  # `codebot discord --sync-commands --guild`
            assert fake.calls_to("PUT", rf"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands")
    finally:
        await fake.stop()


async def test_the_fake_drops_answers_after_the_deadline_which_is_why_slow_commands_defer(tmp_path):
    bot_kw = {"defer_after_s": 5.0}  # a bot that waits too long before answering
    async with discord_stack(tmp_path, deadline_s=0.3, bot_kw=bot_kw) as s:
        locker = asyncio.create_task(asyncio.to_thread(_hold_write_lock, tmp_path / "codebot.db", 0.8))
        await asyncio.sleep(0.1)
        manager = s.fake.user("mod")
        payload = await s.fake.slash(
            "codebot-admin", "set", {"name": "steps", "value": "4"}, user=manager, manager=True
        )
        await locker
        token = payload["token"]
        await s.fake.wait_for("POST", rf"/interactions/\d+/{token}/callback")
        await asyncio.sleep(0.2)  # the error handler's follow-up attempt, if any
        assert not s.fake.calls_to("POST", rf"/webhooks/\d+/{token}")  # nothing ever reached the user


async def test_reset_needs_view_channel_in_the_thread_unless_admin(tmp_path):
    no_view = BASIC_PERMS & ~VIEW_CHANNEL
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_text("Noted: the secret word is pineapple.")
        msg = await s.ask("remember the word pineapple")
        await s.done(msg["id"])
        key = ThreadKey("discord", str(s.fake.guild_id), str(s.fake.channel_id), msg["id"])
        thread = int(msg["id"])
        mallory = s.fake.user("mallory")
        payload = await s.fake.slash("codebot", "reset", user=mallory, channel_id=thread, permissions=no_view)
        refused = await _answer(s, payload)
        assert "Nothing was deleted" in refused and await s.core.has_conversation(key)
        manager = s.fake.user("mod")
        admin_perms = no_view | MANAGE_GUILD
        payload = await s.fake.slash(
            "codebot", "reset", user=manager, channel_id=thread, permissions=admin_perms
        )
        assert "Forgot this thread" in await _answer(s, payload)
        assert not await s.core.has_conversation(key)
