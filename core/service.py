"""The platform-neutral entry point the adapters call: submit questions, run commands, shut down."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from core import turn_cost
from core.commands import Commands
from core.control import Control, ControlResult, guarded
from core.files_in import FileFetcher
from core.recovery import Recovery
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
        recovery: Recovery | None = None,
    ) -> None:
        self._recovery = recovery if recovery is not None else Recovery(store, turns.leases, clock=clock)
        self._settings = settings
        self._store = store
        self._turns = turns
        self._commands = commands
        self._clock = clock
        self._tasks: dict[asyncio.Task[None], tuple[Incoming, ReplySink]] = {}
        self.accepting = True
        self.control = Control(turns.deps, turns.stopping, self.is_admin, clock)

    async def submit(
        self, incoming: Incoming, sink: ReplySink, fetcher: FileFetcher | None = None
    ) -> Submitted:
        """Validate, de-duplicate and schedule a question; returns without waiting for the answer."""
        if not self.accepting:
            await sink.post(NoticeReply("info", SHUTTING_DOWN_TEXT))
            return Submitted(False, "shutting-down")
        incoming = dataclasses.replace(incoming, text=scrub_surrogates(incoming.text))
        with turn_cost.tally():  # the turn's store cost starts with its claim; its task inherits the tally
            rejection = self._reject(incoming.text, bool(incoming.files))
            if rejection is not None:
                return await self._refuse(incoming, sink, *rejection)
            try:
                begun = await self._turns.begin(incoming)  # claim, admission and start: one store call
            except StoreError as exc:
                return await _storage_problem(incoming, sink, exc)
            if begun.duplicate:
                return _duplicate(incoming)
            task = self._turns.launch(incoming, sink, fetcher, begun)  # posts a refusal's notice itself
            self._tasks[task] = (incoming, sink)
            task.add_done_callback(self._finished)
            # The turn is started in the store already: let its task take its first step (tasks run in
            # the order they were scheduled), so a Stop or a shutdown that comes next finds it inside
            # the handlers that record and tell how it ended, not cancelled before it began.
            await asyncio.sleep(0)
            return Submitted(True)

    async def _refuse(
        self, incoming: Incoming, sink: ReplySink, reason: str, notice: NoticeReply
    ) -> Submitted:
        """Say once (a redelivery is claimed already) why a question is not taken at all."""
        try:
            fresh = await self._store.claim_event(
                incoming.key.platform, incoming.event_id, self._clock(), self._settings.event_ttl_s
            )
        except StoreError as exc:
            return await _storage_problem(incoming, sink, exc)
        if not fresh:
            return _duplicate(incoming)
        await sink.post(notice)
        return Submitted(False, reason)

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

    async def stop(self, key: ThreadKey, turn_ref: str, author: Author) -> ControlResult:
        """The Stop button: cancel the running turn `turn_ref` of `key` (asker or admin only)."""
        try:
            return await self.control.stop(key, turn_ref, self._resolved(author), self._tasks)
        except StoreError as exc:
            return ControlResult(f"Storage problem: {exc}", ok=False)

    async def rerun(
        self, key: ThreadKey, step_ref: str, author: Author, sink: ReplySink, message_id: str, press_id: str
    ) -> ControlResult:
        """The Re-run button: run a stored step again as a new step in the thread (asker or admin)."""
        if not self.accepting:
            return ControlResult(SHUTTING_DOWN_TEXT, ok=False)
        try:
            job = await self.control.prepare_rerun(
                key, step_ref, self._resolved(author), message_id, press_id
            )
        except StoreError as exc:
            return ControlResult(f"Storage problem: {exc}", ok=False)
        if isinstance(job, str):
            return ControlResult(job, ok=False)
        run = guarded(self.control.rerun(job, sink, self._turns.exclusive), sink, "re-run")
        task = asyncio.create_task(run, name=f"re-run {key}")
        self._tasks[task] = (job.incoming, sink)
        task.add_done_callback(self._finished)
        return ControlResult(f"Running step {job.step} again; it will appear in the thread.")

    def _resolved(self, author: Author) -> Author:
        return Author(author.id, author.name, self.is_admin(author))

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
        """The one admin rule (core.admin), for adapters that gate a command before running it."""
        return self._commands.admins.is_admin(author)

    async def recover(self, sink_for: Callable[[ThreadKey], ReplySink] | None = None) -> int:
        """Close turns a dead process left open, tell their threads, and return how many there were.

        Called once at start-up by the adapter; on replicas it goes on in the background (core.recovery).
        """
        return await self._recovery.start(sink_for)

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
        await self._recovery.stop()
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


def _with_author(req: CommandRequest, author: Author) -> CommandRequest:
    return dataclasses.replace(req, author=author)


async def _storage_problem(incoming: Incoming, sink: ReplySink, exc: StoreError) -> Submitted:
    """The question's first store call failed: say so in the thread; nothing was taken."""
    log.error("cannot take %s: %s", incoming.event_id, exc)
    await sink.post(NoticeReply("error", f"Storage problem: {exc}"))
    return Submitted(False, "store-error")


def _duplicate(incoming: Incoming) -> Submitted:
    log.info("duplicate event %s ignored", incoming.event_id)
    return Submitted(False, "duplicate")
