"""Slash commands: /codebot (everyone) and /codebot-admin (Manage Server by default, checked at run time).

Discord applies default permissions only to top-level commands, never to subcommands, so the admin
subcommands live in their own group: `/codebot-admin set` and `/codebot-admin audit`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.discord.events import PLATFORM
from bot.discord.interactions import conversation_key, interaction_author
from bot.discord.render import DISCORD_HELP_NOTE, MAX_CHARS, render_command
from bot.discord.status import NO_MENTIONS
from bot.status import cancel_and_wait
from core.command_specs import BY_NAME, COMMANDS, Syntax
from core.types import CommandRequest, CommandResult

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
# Admin commands live in their own top-level group (see the module docstring).
DISCORD_SYNTAX = Syntax(user="/codebot", admin="/codebot-admin")
REPLY_LIMIT = MAX_CHARS - len(DISCORD_HELP_NOTE)  # Discord's 2,000 characters, with room for the note
USER_SUBCOMMANDS = tuple(spec.name for spec in COMMANDS if not spec.admin)
ADMIN_SUBCOMMANDS = tuple(spec.name for spec in COMMANDS if spec.admin)
COMMANDS_TEXT = (
    f"`/codebot {'|'.join(USER_SUBCOMMANDS)}`, and `/codebot-admin {'|'.join(ADMIN_SUBCOMMANDS)}` "
    "for server managers"
)


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
        self.help_view: Callable[[], discord.ui.View] | None = None  # example questions under `help`

    async def run(self, interaction: discord.Interaction, name: str, *args: str) -> None:
        """Answer `/codebot <name> <args>` for the user who invoked it."""
        req = command_request(interaction, name, tuple(a for a in args if a))
        # The core refuses too; answering here first gives Discord's own wording (Manage Server).
        if BY_NAME[name].admin and not self._core.is_admin(req.author):
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
        view = self.help_view() if name == "help" and self.help_view is not None else None
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        try:
            done, _ = await asyncio.wait({task}, timeout=self._defer_after)
            if done:
                result = _result_of(task)
                await interaction.response.send_message(
                    render_command(result, name),
                    ephemeral=result.ephemeral,
                    allowed_mentions=NO_MENTIONS,
                    **extra,
                )
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            await asyncio.wait({task})
            result = _result_of(task)
            await interaction.followup.send(
                render_command(result, name), ephemeral=True, allowed_mentions=NO_MENTIONS, **extra
            )
        finally:
            if view is not None:
                view.stop()  # its buttons are dynamic items; the client need not keep the view
            await cancel_and_wait(task)

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
    key = conversation_key(interaction)
    # Inside a thread or DM the command acts on that conversation (reset, files).
    in_thread = interaction.guild_id is None or isinstance(interaction.channel, discord.Thread)
    thread = key if in_thread else None
    return CommandRequest(
        PLATFORM,
        key.workspace,
        key.channel,
        interaction_author(interaction),
        name,
        args,
        thread,
        DISCORD_SYNTAX,
        REPLY_LIMIT,
    )


def command(user: app_commands.Group, admin: app_commands.Group, name: str) -> Callable[[Any], Any]:
    """Register a callback as the command `name` described in core.command_specs, in its group."""
    spec = BY_NAME[name]

    def register(callback: Any) -> Any:
        described = app_commands.describe(**{a.name: a.description for a in spec.args})(callback)
        group = admin if spec.admin else user
        return group.command(name=spec.name, description=spec.description)(described)

    return register


def _plain(runner: CommandRunner, name: str) -> Callable[[discord.Interaction], Awaitable[None]]:
    async def callback(interaction: discord.Interaction) -> None:
        await runner.run(interaction, name)

    return callback


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

    for spec in COMMANDS:  # the commands without arguments; set and audit have typed options below
        if not spec.args:
            command(user, admin, spec.name)(_plain(runner, spec.name))

    @command(user, admin, "set")
    async def set_(interaction: discord.Interaction, name: str, value: str) -> None:
        await runner.run(interaction, "set", name, value)

    @command(user, admin, "audit")
    async def audit(interaction: discord.Interaction, entry: str | None = None) -> None:
        await runner.run(interaction, "audit", entry or "")

    registered = {c.name for c in user.commands} | {c.name for c in admin.commands}
    missing = set(BY_NAME) - registered
    if missing:  # a command described in core but not mapped here would be unreachable on Discord
        raise RuntimeError(f"Discord registers no slash command for {sorted(missing)}")
    return [user, admin]
