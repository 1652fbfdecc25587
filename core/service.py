"""The platform-neutral entry point the adapters call: submit questions, run commands, shut down."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from core.commands import Commands
from core.files_in import FileFetcher
from core.settings import Settings
from core.sink import ReplySink
from core.store.base import Store, StoreError
from core.text import scrub_surrogates
from core.turn import TurnRunner
from core.types import (
    Author,
    CommandRequest,
    CommandResult,
    Incoming,
    NoticeReply,
    Submitted,
    ThreadKey,
)

log = logging.getLogger(__name__)

EMPTY_TEXT = (
    "Ask me something I can answer by running Python, for example "
    "_what is the sqrt of 2_ or _plot sin(x) from 0 to 2π_. Replies in this thread continue the "
    "conversation. Use `/codebot help` for commands and limits."
)
SHUTTING_DOWN_TEXT = "The bot is restarting right now; please ask again in a minute."


class Codebot:
    """Accepts questions from any adapter and runs each as a tracked task."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        turns: TurnRunner,
        commands: Commands,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._turns = turns
        self._commands = commands
        self._clock = clock
        self._tasks: dict[asyncio.Task[None], tuple[Incoming, ReplySink]] = {}
        self.accepting = True

    async def submit(
        self, incoming: Incoming, sink: ReplySink, fetcher: FileFetcher | None = None
    ) -> Submitted:
        """Validate, de-duplicate and schedule a question; returns without waiting for the answer."""
        if not self.accepting:
            await sink.post(NoticeReply("info", SHUTTING_DOWN_TEXT))
            return Submitted(False, "shutting-down")
        incoming = dataclasses.replace(incoming, text=scrub_surrogates(incoming.text))
        try:
            fresh = await self._store.claim_event(
                incoming.key.platform, incoming.event_id, self._clock(), self._settings.event_ttl_s
            )
        except StoreError as exc:
            log.error("cannot de-duplicate %s: %s", incoming.event_id, exc)
            await sink.post(NoticeReply("error", f"Storage problem: {exc}"))
            return Submitted(False, "store-error")
        if not fresh:
            log.info("duplicate event %s ignored", incoming.event_id)
            return Submitted(False, "duplicate")
        rejection = self._reject(incoming.text, bool(incoming.files))
        if rejection is not None:
            reason, notice = rejection
            await sink.post(notice)
            return Submitted(False, reason)
        task = asyncio.create_task(self._turns.run(incoming, sink, fetcher), name=f"turn {incoming.key}")
        self._tasks[task] = (incoming, sink)
        task.add_done_callback(self._finished)
        return Submitted(True)

    def _reject(self, text: str, has_files: bool = False) -> tuple[str, NoticeReply] | None:
        stripped = text.strip()
        if not stripped and not has_files:  # a file on its own is a question: "what is in this?"
            return "empty", NoticeReply("info", EMPTY_TEXT)
        limit = self._settings.max_question_chars
        if len(stripped) > limit:
            return "too-long", NoticeReply(
                "error",
                f"That message is {len(stripped):,} characters; I take at most {limit:,}. "
                "Please shorten it (or ask me to generate the data instead of pasting it).",
            )
        return None

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("turn task crashed", exc_info=task.exception())

    async def command(self, req: CommandRequest) -> CommandResult:
        """Run a `/codebot` command with the caller's admin status resolved."""
        author = Author(req.author.id, req.author.name, self.is_admin(req.author))
        try:
            return await self._commands.handle(_with_author(req, author))
        except StoreError as exc:
            return CommandResult(f"Storage problem: {exc}", ok=False)

    async def has_conversation(self, key: ThreadKey) -> bool:
        """True when the bot already answers in this thread (stored history, or a turn in progress).

        A thread's first turn writes its history only when it ends, so a follow-up typed while the bot is
        still answering would otherwise be ignored. Started turns live in the store, so this holds across
        replicas too.
        """
        try:
            return await self._store.has_conversation(key)
        except StoreError:
            return False

    def is_admin(self, author: Author) -> bool:
        return author.is_admin or author.id in self._settings.admin_ids

    async def recover(self, sink_for: Callable[[ThreadKey], ReplySink] | None = None) -> int:
        """Close turns a crash left open and tell their threads; return how many there were.

        Called once at start-up. A turn is open when it was started but never committed or
        abandoned: the process died mid-answer. Its history is intact (turns commit atomically).
        """
        try:
            open_turns = await self._store.unfinished_turns()
        except StoreError as exc:
            log.error("cannot look for interrupted turns: %s", exc)
            return 0
        for key, event_id, question in open_turns:
            await self._store.abandon_turn(event_id, "interrupted by a restart", self._clock())
            if sink_for is None:
                continue
            text = (
                f"I was restarted while answering _{_snippet(question)}_ and could not finish. "
                "Please ask again."
            )
            try:
                await sink_for(key).post(NoticeReply("abandoned", text))
            except Exception:
                log.exception("could not tell %s about an interrupted turn", key)
        if open_turns:
            log.warning("closed %d turn(s) interrupted by a restart", len(open_turns))
        return len(open_turns)

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every scheduled turn has finished (tests, shutdown)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(list(self._tasks))

    async def shutdown(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running turns finish within the grace period, abandon the rest."""
        self.accepting = False
        grace = self._settings.shutdown_grace_s if grace_s is None else grace_s
        pending = list(self._tasks)
        if pending:
            log.info("waiting up to %.0f s for %d running turn(s)", grace, len(pending))
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                log.warning("abandoned %d turn(s) at shutdown", len(still))
                await asyncio.gather(*still, return_exceptions=True)


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _with_author(req: CommandRequest, author: Author) -> CommandRequest:
    return CommandRequest(
        platform=req.platform,
        workspace=req.workspace,
        channel=req.channel,
        author=author,
        name=req.name,
        args=req.args,
        thread=req.thread,
    )
