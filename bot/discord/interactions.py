"""Who and where a slash command or a button press comes from, read from the interaction."""

from __future__ import annotations

import discord

from bot.discord.events import PLATFORM, dm_workspace
from core.types import Author, ThreadKey


def interaction_author(interaction: discord.Interaction) -> Author:
    """Who invoked a command or pressed a button; Manage Server (or Administrator) makes an admin."""
    user = interaction.user
    perms = interaction.permissions
    admin = interaction.guild_id is not None and (perms.manage_guild or perms.administrator)
    return Author(str(user.id), getattr(user, "display_name", "") or user.name, admin)


def conversation_key(interaction: discord.Interaction) -> ThreadKey:
    """The conversation an interaction comes from, keyed as events.route keys its messages."""
    ch = str(interaction.channel_id)
    if interaction.guild_id is None:
        return ThreadKey(PLATFORM, dm_workspace(ch), ch, ch)
    channel = interaction.channel
    guild = str(interaction.guild_id)
    if isinstance(channel, discord.Thread):
        return ThreadKey(PLATFORM, guild, str(channel.parent_id), ch)
    return ThreadKey(PLATFORM, guild, ch, ch)
