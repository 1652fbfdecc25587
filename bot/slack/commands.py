"""The /codebot slash command: ack within Slack's 3 s, run the core's command, answer ephemerally."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.access import is_member
from bot.slack.admins import UserDirectory
from bot.slack.events import PLATFORM, parse_command_text, parse_thread_ref
from bot.slack.render import render_command_text
from core.types import Author, CommandRequest, CommandResult, ThreadKey

if TYPE_CHECKING:
    from core.service import Codebot

log = logging.getLogger(__name__)

RESET_HELP = (
    "Slack does not tell a slash command which thread it was typed in, so name the thread: "
    "`/codebot reset <link to the thread>` (⋮ › Copy link on the thread's first message), "
    "or write `@codebot reset` inside the thread."
)
FILES_HELP = (
    "Slack does not tell a slash command which thread it was typed in, so name the thread: "
    "`/codebot files <link to the thread>`, or write `@codebot files` inside the thread."
)
THREAD_COMMANDS = ("reset", "files")  # commands about one thread, named by link
RESET_REFUSED = (
    ":no_entry: You can only reset a thread in a channel you are a member of (workspace admins can "
    "reset any). Nothing was deleted."
)


def build_request(body: Mapping[str, Any], author: Author) -> CommandRequest | str:
    """Turn a slash-command payload into a CommandRequest, or a message explaining what is missing."""
    name, args = parse_command_text(str(body.get("text", "")))
    team, channel = str(body.get("team_id", "")), str(body.get("channel_id", ""))
    thread = None
    if name in THREAD_COMMANDS:
        ref = parse_thread_ref(args[0], channel) if args else None
        if ref is None:
            return RESET_HELP if name == "reset" else FILES_HELP
        thread = ThreadKey(PLATFORM, team, ref[0], ref[1])
        args = args[1:]
    return CommandRequest(PLATFORM, team, channel, author, name, args, thread)


def response_args(result: CommandResult) -> dict[str, str]:
    """Render a command result as the text + response_type Slack expects."""
    kind = "ephemeral" if result.ephemeral else "in_channel"
    return {"text": render_command_text(result.text), "response_type": kind}


class SlashCommand:
    """Bolt listener for /codebot. Answers via ack() when the core is quick, else via response_url."""

    THREAD_COMMANDS = THREAD_COMMANDS  # also commands when written as a mention inside the thread

    def __init__(
        self, core: Codebot, users: UserDirectory, client: AsyncWebClient, *, ack_budget_s: float = 2.0
    ) -> None:
        self._core = core
        self._users = users
        self._client = client
        self._budget = ack_budget_s  # Slack's hard limit is 3 s; leave room for the network

    async def __call__(
        self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: Callable[..., Awaitable[Any]]
    ) -> None:
        """Handle one /codebot invocation."""
        work = asyncio.create_task(self._run(body))
        done, _ = await asyncio.wait({work}, timeout=self._budget)
        if done:
            await ack(**work.result())
            return
        await ack(text=":hourglass_flowing_sand: Working on it…", response_type="ephemeral")
        await respond(**await work)

    async def _may_act_on_thread(self, request: CommandRequest) -> bool:
        """A thread named by link may be in a channel the caller cannot see (a private one): check."""
        thread = request.thread
        if thread is None or thread.channel == request.channel:  # typed in that very channel
            return True
        if self._core.is_admin(request.author):
            return True
        return await is_member(self._client, thread.channel, request.author.id)

    async def _run(self, body: Mapping[str, Any]) -> dict[str, str]:
        user_id = str(body.get("user_id", ""))
        try:
            info = await self._users.lookup(user_id)
            author = Author(user_id, info.name or str(body.get("user_name", "")), info.is_admin)
            request = build_request(body, author)
            if isinstance(request, str):
                return {"text": request, "response_type": "ephemeral"}
            if not await self._may_act_on_thread(request):
                return {"text": RESET_REFUSED, "response_type": "ephemeral"}
            return response_args(await self._core.command(request))
        except Exception:  # a broken command must still answer the user, never leave Slack hanging
            log.exception("/codebot failed")
            return {
                "text": ":warning: That command failed on our side; please try again.",
                "response_type": "ephemeral",
            }
