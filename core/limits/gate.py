"""Per-workspace concurrency: at most `cap` turns run at once, the rest wait in a FIFO queue.

The gate is in-process state, which is right for one bot process. A deployment with several replicas
(the PostgreSQL store) needs a store-backed semaphore instead, e.g. lease rows with an expiry, so the
cap holds across processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from core.store.base import Workspace

log = logging.getLogger(__name__)

OnQueued = Callable[[int], Awaitable[None]]


@dataclass(eq=False)
class _Waiter:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    granted: bool = False


@dataclass(eq=False)
class _Queue:
    cap: int
    running: int = 0
    waiters: deque[_Waiter] = field(default_factory=deque)


class WorkspaceGate:
    """Admits turns per workspace; one busy workspace never delays another."""

    def __init__(self) -> None:
        self._queues: dict[Workspace, _Queue] = {}

    def held_ticket(self) -> int | None:
        """The store ticket of the slot the current task holds (a store-backed gate), else None."""
        return None

    def gave_back(self, ticket: int) -> None:
        """The store released `ticket` with the turn's commit: the slot's exit need not release it again."""

    def running(self, ws: Workspace) -> int:
        """Return how many turns of a workspace hold a slot."""
        q = self._queues.get(ws)
        return q.running if q else 0

    def waiting(self, ws: Workspace) -> int:
        """Return how many turns of a workspace are queued."""
        q = self._queues.get(ws)
        return len(q.waiters) if q else 0

    @asynccontextmanager
    async def slot(self, ws: Workspace, cap: int, on_queued: OnQueued) -> AsyncIterator[None]:
        """Hold one of the workspace's `cap` slots; while queued, report the position (1 = next)."""
        q = self._queues.setdefault(ws, _Queue(cap))
        q.cap = max(1, cap)  # the newest caller carries the workspace's current setting
        if q.running < q.cap and not q.waiters:
            q.running += 1
        else:
            await self._wait(ws, q, on_queued)
        try:
            yield
        finally:
            q.running -= 1
            self._dispatch(ws, q)

    async def _wait(self, ws: Workspace, q: _Queue, on_queued: OnQueued) -> None:
        waiter = _Waiter()
        q.waiters.append(waiter)
        self._dispatch(ws, q)  # a raised cap may free a slot straight away
        reported = 0
        try:
            while not waiter.granted:
                position = q.waiters.index(waiter) + 1
                if position != reported:
                    # Reported from this coroutine, so moves during a slow callback coalesce.
                    reported = position
                    await _notify(on_queued, position)
                    continue
                waiter.wake.clear()
                await waiter.wake.wait()
        except BaseException:
            if waiter.granted:  # granted, then cancelled before it could use the slot: pass it on
                q.running -= 1
            else:
                q.waiters.remove(waiter)
            self._dispatch(ws, q)
            raise

    def _dispatch(self, ws: Workspace, q: _Queue) -> None:
        """Hand free slots to the head of the queue and tell everyone else they moved."""
        while q.waiters and q.running < q.cap:
            waiter = q.waiters.popleft()
            waiter.granted = True
            q.running += 1
            waiter.wake.set()
        for waiter in q.waiters:
            waiter.wake.set()
        if q.running == 0 and not q.waiters and self._queues.get(ws) is q:
            del self._queues[ws]  # idle workspaces cost nothing


async def _notify(on_queued: OnQueued, position: int) -> None:
    try:
        await on_queued(position)
    except Exception:
        # A failed "you are number N" message must not cost the user their place.
        log.exception("queue position callback failed")
