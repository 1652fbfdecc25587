"""Recovery of turns nobody is running any more: tell their threads once, and free the threads.

One process (SQLite): at start-up every started turn is a crash's leftover. Several replicas
(PostgreSQL): only turns whose lease expired are, since the others' turns are still running. Those are
taken over at start-up and every quarter lease after, by one atomic store call per sweep, so two
survivors never report the same turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from core.lease import RENEWALS_PER_LEASE, TurnLeases
from core.sink import ReplySink
from core.store.base import Store, StoreError
from core.types import NoticeReply, ThreadKey

log = logging.getLogger(__name__)

SinkFor = Callable[[ThreadKey], ReplySink]
RESTART_REASON = "interrupted by a restart"
TAKEOVER_REASON = "interrupted: its replica stopped renewing its lease"


def interrupted_text(question: str) -> str:
    """The notice a thread gets when its question's turn died with its process."""
    return f"I was restarted while answering _{_snippet(question)}_ and could not finish. Please ask again."


class Recovery:
    """Closes turns a dead process left open and tells their threads; on replicas, keeps doing so.

    Args:
        platforms: the platforms this process can post to (None: any). A Slack replica must not take
            over a Discord replica's turns: it could not tell their threads.
    """

    def __init__(
        self,
        store: Store,
        leases: TurnLeases,
        *,
        platforms: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._leases = leases
        self._platforms = None if platforms is None else tuple(platforms)
        self._clock = clock
        self._sink_for: SinkFor | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, sink_for: SinkFor | None = None) -> int:
        """Sweep once now; on replicas, keep sweeping in the background. Return how many were closed."""
        self._sink_for = sink_for
        closed = await self.sweep(expired_only=self._leases.shared)
        if self._leases.shared and self._task is None:
            self._task = asyncio.create_task(self._every_quarter_lease(), name="turn recovery")
        return closed

    async def sweep(self, *, expired_only: bool = True) -> int:
        """Take over the turns nobody runs any more, tell their threads, and return how many."""
        reason = TAKEOVER_REASON if expired_only else RESTART_REASON
        try:
            taken = await self._store.take_over_turns(self._clock(), reason, expired_only, self._platforms)
        except StoreError as exc:
            log.error("cannot look for interrupted turns: %s", exc)
            return 0
        for key, event_id, question in taken:
            await self._tell(key, event_id, question)
        if taken:
            log.warning("closed %d turn(s) interrupted by a restart or a dead replica", len(taken))
        return len(taken)

    async def _tell(self, key: ThreadKey, event_id: str, question: str) -> None:
        if self._sink_for is None:
            return
        try:
            await self._sink_for(key).post(NoticeReply("abandoned", interrupted_text(question)))
        except Exception:
            log.exception("could not tell %s about its interrupted turn %s", key, event_id)

    async def _every_quarter_lease(self) -> None:
        while True:
            await asyncio.sleep(self._leases.lease_s / RENEWALS_PER_LEASE)
            try:
                await self.sweep()
            except Exception:  # one bad sweep must not end recovery for the rest of the process's life
                log.exception("a recovery sweep failed")

    async def stop(self) -> None:
        """Stop the background sweeps (shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
