"""The turn's entry to a thread's workspace: take in attached files, describe it, wrap the sandbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.files_in import FileFetcher
from core.limits import EffectiveLimits
from core.sink import ReplySink
from core.store.base import ThreadContext, ThreadFiles
from core.threadfiles.caps import ThreadCaps
from core.threadfiles.intake import take_in
from core.threadfiles.runner import ThreadRunner, WorkspaceRunner
from core.threadfiles.summary import workspace_summary
from core.types import Incoming, NoticeReply, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnWorkspace:
    """What one turn gets: the runner that uses the workspace, and what to tell the model."""

    runner: ThreadRunner
    summary: str  # for the system prompt; "" when the workspace is empty
    attached: tuple[str, ...] = ()  # names the files of this message were stored under
    history: tuple[str, ...] = ()  # the thread's newest stored history entries (codec JSON), oldest first

    def question(self, text: str) -> str:
        """Append the stored names of this message's files, so the history says what came with it."""
        if not self.attached:
            return text
        return f"{text}\n(attached: {', '.join(self.attached)})"


class ThreadWorkspaces:
    """One per process; prepares each turn's workspace from the store."""

    def __init__(self, store: ThreadFiles, sandbox: WorkspaceRunner, clock: Callable[[], float]) -> None:
        self._store = store
        self._sandbox = sandbox
        self._clock = clock

    async def prepare(
        self,
        incoming: Incoming,
        sink: ReplySink,
        fetcher: FileFetcher | None,
        limits: EffectiveLimits,
        history_limit: int,
        context: ThreadContext | None = None,
    ) -> TurnWorkspace:
        """Store this message's files (telling the thread what was refused), then read the thread's
        history and describe its workspace, in one store call (none when the turn's start read them:
        `context`, for a message without files)."""
        caps = ThreadCaps.of(limits)

        async def notify(text: str) -> None:
            try:
                await sink.post(NoticeReply("limit", text))
            except Exception:
                log.exception("could not post a workspace notice to the thread")

        if incoming.files:  # downloads take a while: show the turn is alive (and open the thread first,
            # so a refused file is named inside it, not beside the question)
            await sink.progress(Progress.THINKING, "reading the attached files")
        intake = await take_in(self._store, incoming.key, incoming.files, fetcher, caps, self._clock())
        for text in intake.notices:
            await notify(text)
        if context is None or incoming.files:
            context = await self._store.thread_context(incoming.key, history_limit)
        runner = ThreadRunner(self._sandbox, self._store, incoming.key, caps, notify, self._clock, context)
        summary = workspace_summary(context.files, context.state)
        return TurnWorkspace(runner, summary, intake.added, context.messages)
