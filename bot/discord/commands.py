"""Slash commands: /codebot (everyone) and /codebot-admin (Manage Server by default, checked at run time).

Discord applies default permissions only to top-level commands, never to subcommands, so the admin
subcommands live in their own group: `/codebot-admin set` and `/codebot-admin audit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.discord.events import PLATFORM, dm_workspace
from bot.discord.render import render_command
from bot.discord.status import NO_MENTIONS
from core.types import Author, CommandRequest, CommandResult, ThreadKey

if TYPE_CHECKING:
    from core.service import Codebot

log = logging.getLogger(__name__)

NOT_ADMIN_TEXT = (
    "Only members with the *Manage Server* permission (or operators listed in `CODEBOT_ADMIN_IDS`) "
    "can do that."
)
FAILED_TEXT = "Sorry, that command failed on our side; the problem was logged."
RESET_REFUSED = (
    "You can only reset a conversation in a channel you can view (members with *Manage Server* can "
    "reset any). Nothing was deleted."
)
USER_SUBCOMMANDS = ("help", "limits", "usage", "reset", "files")
ADMIN_SUBCOMMANDS = ("set", "audit")
COMMANDS_TEXT = "`/codebot help|limits|usage|reset|files`, and `/codebot-admin set|audit` for server managers"


def stale_command_text(path: tuple[str, ...]) -> str:
    """Answer a command this bot does not (or no longer) registers, naming the right one.

    Discord keeps sending old registrations until clients refresh, so `/codebot set` from before the
    admin group existed still arrives; it deserves directions, not an internal error.
    """
    sub = path[-1].lower()[:40].replace("`", "'") if path else ""
    shown = "/" + " ".join(p[:40].replace("`", "'") for p in path)
    if sub in ADMIN_SUBCOMMANDS:
        return f"`{shown}` has moved: use `/codebot-admin {sub}` (server managers)."
    if sub in USER_SUBCOMMANDS:
        return f"`{shown}` has moved: use `/codebot {sub}`."
    return f"I don't know `{shown}`. The commands are {COMMANDS_TEXT}; `/codebot help` explains them."


def command_path(interaction: discord.Interaction) -> tuple[str, ...]:
    """The invoked command's names (`codebot`, `set`) read from the raw interaction data."""
    data: dict[str, Any] = dict(interaction.data) if isinstance(interaction.data, dict) else {}
    names = [str(data.get("name", ""))]
    options: list[Any] = list(data.get("options") or [])
    while options and isinstance(options[0], dict) and options[0].get("type") in (1, 2):
        names.append(str(options[0].get("name", "")))
        options = list(options[0].get("options") or [])
    return tuple(n for n in names if n)


class CommandRunner:
    """Runs one command through the core and answers ephemerally, deferring when the core is slow."""

    def __init__(self, core: Codebot, defer_after_s: float = 1.0) -> None:
        # Discord drops an interaction not answered within 3 s; deferring well before keeps it alive.
        self._core = core
        self._defer_after = defer_after_s

    async def run(self, interaction: discord.Interaction, name: str, *args: str, admin: bool = False) -> None:
        """Answer `/codebot <name> <args>` for the user who invoked it."""
        req = command_request(interaction, name, tuple(a for a in args if a))
        if admin and not self._core.is_admin(req.author):
            await interaction.response.send_message(
                NOT_ADMIN_TEXT, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        if req.thread is not None and not self._may_act_on_thread(interaction, req):
            await interaction.response.send_message(
                RESET_REFUSED, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        task = asyncio.create_task(self._core.command(req), name=f"discord command {name}")
        try:
            done, _ = await asyncio.wait({task}, timeout=self._defer_after)
            if done:
                result = _result_of(task)
                await interaction.response.send_message(
                    render_command(result, name), ephemeral=result.ephemeral, allowed_mentions=NO_MENTIONS
                )
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            await asyncio.wait({task})
            result = _result_of(task)
            await interaction.followup.send(
                render_command(result, name), ephemeral=True, allowed_mentions=NO_MENTIONS
            )
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _may_act_on_thread(self, interaction: discord.Interaction, req: CommandRequest) -> bool:
        """Only someone who can see the thread may wipe it; admins always may."""
        # Discord resolves the invoker's permissions in the channel the command came from (the thread).
        if interaction.guild_id is None or self._core.is_admin(req.author):
            return True  # a DM is the invoker's own conversation
        return bool(interaction.permissions.view_channel)


def _result_of(task: asyncio.Task[CommandResult]) -> CommandResult:
    exc = task.exception()
    if exc is None:
        return task.result()
    log.error("command failed", exc_info=exc)
    return CommandResult(FAILED_TEXT, ok=False)


def command_request(interaction: discord.Interaction, name: str, args: tuple[str, ...]) -> CommandRequest:
    """Build the platform-neutral request; `thread` is set inside a thread or DM (for reset)."""
    user = interaction.user
    perms = interaction.permissions
    is_admin = interaction.guild_id is not None and (perms.manage_guild or perms.administrator)
    author = Author(str(user.id), getattr(user, "display_name", "") or user.name, is_admin)
    channel = interaction.channel
    channel_id = str(interaction.channel_id)
    workspace = str(interaction.guild_id) if interaction.guild_id else dm_workspace(channel_id)
    thread: ThreadKey | None = None
    if isinstance(channel, discord.Thread):
        channel_id = str(channel.parent_id)
        thread = ThreadKey(PLATFORM, workspace, channel_id, str(channel.id))
    elif interaction.guild_id is None:
        thread = ThreadKey(PLATFORM, workspace, channel_id, channel_id)
    return CommandRequest(PLATFORM, workspace, channel_id, author, name, args, thread)


def build_groups(runner: CommandRunner) -> list[app_commands.Group]:
    """The command groups to add to the tree."""
    user = app_commands.Group(name="codebot", description="Ask codebot about its limits, usage and commands")
    admin = app_commands.Group(
        name="codebot-admin",
        description="Change codebot's limits and read its audit log (server managers)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
    )

    @user.command(name="help", description="How to use codebot, and its commands and limits")
    async def help_(interaction: discord.Interaction) -> None:
        await runner.run(interaction, "help")

    @user.command(name="limits", description="This server's limits")
    async def limits(interaction: discord.Interaction) -> None:
        await runner.run(interaction, "limits")

    @user.command(name="usage", description="Runs, tokens and sandbox time used today and this week")
    async def usage(interaction: discord.Interaction) -> None:
        await runner.run(interaction, "usage")

    @user.command(name="reset", description="Forget this thread's conversation (use it inside the thread)")
    async def reset(interaction: discord.Interaction) -> None:
        await runner.run(interaction, "reset")

    @user.command(name="files", description="This thread's files and kept variables (inside the thread)")
    async def files(interaction: discord.Interaction) -> None:
        await runner.run(interaction, "files")

    @admin.command(name="set", description="Set a limit for this server")
    @app_commands.describe(name="limit name, e.g. timeout", value="new value, e.g. 30s")
    async def set_(interaction: discord.Interaction, name: str, value: str) -> None:
        await runner.run(interaction, "set", name, value, admin=True)

    @admin.command(name="audit", description="Latest code executions, or one run's code by id")
    @app_commands.describe(entry="an audit id to show that run's code")
    async def audit(interaction: discord.Interaction, entry: str | None = None) -> None:
        await runner.run(interaction, "audit", entry or "", admin=True)

    return [user, admin]
