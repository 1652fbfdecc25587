"""The per-workspace queue kept in the store, so its cap and FIFO order hold across replicas.

Each turn takes a ticket (a row with a lease). While it waits it polls: each poll renews the lease,
reports its position, and is admitted when it is among the first (cap - running) in line. While it runs,
a background task keeps renewing. A replica that dies stops renewing, so after `lease_s` its tickets
are dropped and the next in line starts. A release in this process wakes its local waiters at once;
releases elsewhere are seen within `poll_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from core.limits.gate import OnQueued, WorkspaceGate, _notify
from core.store.base import Leases, StoreError, Workspace

log = logging.getLogger(__name__)


class StoreGate(WorkspaceGate):
    """WorkspaceGate over store leases. `running`/`waiting` count this process's own turns only."""

    def __init__(
        self,
        store: Leases,
        *,
        lease_s: float = 60.0,
        poll_s: float = 0.25,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        super().__init__()
        self._store = store
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._clock = clock
        self._owner = owner or f"{uuid.uuid4().hex[:12]}"  # names this replica in the tickets it holds
        self._changed: dict[Workspace, asyncio.Event] = {}
        self._mine: dict[Workspace, list[int]] = {}  # [running, waiting] of this process
        # Tickets a turn's start already queued (core.lease), by the turn's task: its slot() uses them.
        self._adopted: dict[asyncio.Task[object], tuple[int, int]] = {}
        self._leaving: set[asyncio.Task[None]] = set()
        self._held: dict[asyncio.Task[object], int] = {}  # the running slot's ticket, by the turn's task
        self._given_back: set[int] = set()  # tickets a turn's commit already deleted

    def running(self, ws: Workspace) -> int:
        """Return how many of this process's turns of the workspace hold a slot."""
        return self._mine.get(ws, [0, 0])[0]

    def waiting(self, ws: Workspace) -> int:
        """Return how many of this process's turns of the workspace are queued."""
        return self._mine.get(ws, [0, 0])[1]

    async def counts(self, ws: Workspace) -> tuple[int, int]:
        """Return (running, waiting) across every replica."""
        return await self._store.gate_counts(ws, self._clock())

    def held_ticket(self) -> int | None:
        """The ticket of the slot the current task holds, so the turn's commit can give it back."""
        task = asyncio.current_task()
        return None if task is None else self._held.get(task)

    def gave_back(self, ticket: int) -> None:
        """The turn's commit deleted its ticket: leaving the slot then costs no round trip of its own."""
        self._given_back.add(ticket)

    def adopt(self, ticket: int, position: int, task: asyncio.Task[object]) -> None:
        """Take a ticket a turn's start queued, for the slot() of its task to use instead of a new one."""
        self._adopted[task] = (ticket, position)

    def drop_adopted(self, task: asyncio.Task[object]) -> None:
        """The turn ended without using its ticket (it failed before its slot): give the ticket back."""
        entry = self._adopted.pop(task, None)
        if entry is not None:
            leaving = asyncio.get_running_loop().create_task(self._leave(entry[0]))
            self._leaving.add(leaving)
            leaving.add_done_callback(self._leaving.discard)

    @asynccontextmanager
    async def slot(self, ws: Workspace, cap: int, on_queued: OnQueued) -> AsyncIterator[None]:
        """Hold one of the workspace's `cap` slots; while queued, report the position (1 = next)."""
        mine = self._mine.setdefault(ws, [0, 0])
        mine[1] += 1
        ticket: int | None = None
        try:
            ticket = await self._wait_for_slot(ws, max(1, cap), on_queued)
        finally:
            mine[1] -= 1
            if ticket is None:  # cancelled or failed while queued
                self._forget(ws)
        mine[0] += 1
        renewing = asyncio.create_task(self._renew(ticket, ws, max(1, cap)))
        task = asyncio.current_task()
        if task is not None:
            self._held[task] = ticket
        try:
            yield
        finally:
            if task is not None:
                self._held.pop(task, None)
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            mine[0] -= 1
            if ticket in self._given_back:
                self._given_back.discard(ticket)
            else:
                await self._leave(ticket)
            self._wake(ws)
            self._forget(ws)

    async def _wait_for_slot(self, ws: Workspace, cap: int, on_queued: OnQueued) -> int:
        """Queue a ticket and poll until it runs; return the ticket. A ticket lost to a stall is renewed."""
        changed = self._changed.setdefault(ws, asyncio.Event())
        changed.clear()
        task = asyncio.current_task()
        adopted = self._adopted.pop(task, None) if task is not None else None
        if adopted is not None:  # queued by the turn's start in the same round trip
            ticket, first = adopted
        else:
            ticket, first = await self._store.gate_enter(ws, self._owner, cap, self._clock(), self._lease_s)
        position: int | None = first
        reported = 0
        try:
            while True:
                if position == 0:
                    return ticket
                if position is None:  # this process stalled past the lease: queue again at the back
                    ticket, position = await self._store.gate_enter(
                        ws, self._owner, cap, self._clock(), self._lease_s
                    )
                    continue
                if position != reported:
                    reported = position
                    await _notify(on_queued, position)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), self._poll_s)
                changed = self._changed.setdefault(ws, asyncio.Event())
                changed.clear()
                position = await self._store.gate_poll(ticket, ws, cap, self._clock(), self._lease_s)
        except BaseException:
            await self._leave(ticket)
            self._wake(ws)
            raise

    async def _renew(self, ticket: int, ws: Workspace, cap: int) -> None:
        """Keep a running ticket's lease alive; a failed renewal is retried, never fatal to the turn."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self._store.gate_poll(ticket, ws, cap, self._clock(), self._lease_s)
            except StoreError as exc:
                log.warning("could not renew the workspace slot of %s: %s", ws, exc)

    async def _leave(self, ticket: int) -> None:
        # Shielded: a cancelled turn must still give its slot back, or the queue waits out the lease.
        try:
            await asyncio.shield(self._store.gate_leave(ticket))
        except StoreError as exc:
            log.warning("could not release a workspace slot (it frees when its lease ends): %s", exc)

    def _wake(self, ws: Workspace) -> None:
        event = self._changed.get(ws)
        if event is not None:
            event.set()

    def _forget(self, ws: Workspace) -> None:
        if self._mine.get(ws) == [0, 0]:
            del self._mine[ws]
            self._changed.pop(ws, None)  # idle workspaces cost nothing
