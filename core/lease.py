"""Turn leases: a running turn proves it is alive, so another replica can report it only once it is dead.

On PostgreSQL (several replicas) a turn starts with a lease in the store, naming this replica, and takes
its thread's lock in the same statement; a background task renews both every lease/4. A replica that is
paused past its lease (SIGSTOP, a stalled VM) may find on renewal that a survivor took its turn over and
told the thread: it then cancels the turn, and its sink posts nothing more, so the thread never gets an
answer after the "interrupted" notice. The sink also stops posting as soon as the lease may have
lapsed by this process's own clock (no successful renewal within 3/4 of the lease), because a survivor
may take the turn the moment it expires, before this process gets to renew.

On SQLite (one process) a turn starts as before and its thread lock is in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from core.limits.store_gate import StoreGate
from core.locks import KeyedLocks
from core.sink import ReplySink
from core.store.base import RunCheck, Store, StoreError, TurnBegin, TurnBegun, TurnStart
from core.types import Incoming, Progress, Reply, ThreadKey

log = logging.getLogger(__name__)

STOP_POLL_S = 1.0  # how soon a Stop pressed on another replica reaches a turn here
RENEWALS_PER_LEASE = 4  # renew at a quarter of the lease: three renewals may fail before it lapses
VALID_SHARE = 0.75  # post only while the last good renewal was sent less than this share of a lease ago


def replica_id() -> str:
    """Name this process in the store's leases: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Lease:
    """One running turn's lease (mutable, private to this process)."""

    incoming: Incoming
    task: asyncio.Task[Any] | None
    renewed_at: float  # monotonic time the last successful renewal (or the start) was sent
    holds_thread: bool
    lost: bool = False
    ended: bool = False
    in_flight: bool = False  # a renewal statement is under way: let it finish rather than cancel it
    renewer: asyncio.Task[None] | None = field(default=None, repr=False)
    start: TurnStart | None = None  # what the start got (its queue ticket, for bind())


class TurnLeases:
    """This replica's leases on its running turns, and the per-thread lock that goes with them.

    `shared` is True on PostgreSQL: leases and thread locks live in the store. False keeps today's
    one-process behaviour (store.start_turn, in-process thread locks, nothing to renew).
    """

    def __init__(
        self,
        store: Store,
        *,
        shared: bool,
        lease_s: float = 60.0,
        owner: str | None = None,
        poll_s: float = 0.25,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        gate: StoreGate | None = None,
        stop_poll_s: float = STOP_POLL_S,
    ) -> None:
        self._store = store
        self._gate = gate  # the shared workspace queue: a turn's start also queues its ticket there
        self.shared = shared
        self.lease_s = lease_s
        self.owner = owner or replica_id()
        self._poll_s = poll_s
        self._clock = clock
        self._monotonic = monotonic
        self._local = KeyedLocks()
        self._freed: dict[ThreadKey, asyncio.Event] = {}  # set when a turn here ends: its line polls at once
        self._leases: dict[str, _Lease] = {}
        self.stopping: dict[str, str] = {}  # event id -> who pressed Stop (here, or on another replica)
        self._stop_poll_s = stop_poll_s
        self._stops: asyncio.Task[None] | None = None  # polls for Stops pressed elsewhere while busy
        self._polling = False

    async def begin(self, incoming: Incoming, cap: int | None = None) -> None:
        """Record the turn as started; when shared, with its lease and, if free, its thread's lock.

        `cap` is the workspace's concurrency: a turn that gets its thread's lock is also queued for a
        workspace slot in the same round trip (its slot() then uses that ticket).
        """
        key, now = incoming.key, self._clock()
        if not self.shared:
            await self._store.start_turn(key, incoming.event_id, incoming.author.id, incoming.text, now)
            return
        sent = self._monotonic()
        started = await self._store.start_turn_leased(
            key, incoming.event_id, incoming.author.id, incoming.text, now, self.owner, self.lease_s,
            cap if self._gate is not None else None,
        )  # fmt: skip
        self._hold(incoming, started, sent)
        task = asyncio.current_task()
        if task is not None:
            self.bind(incoming, task)

    async def begin_question(
        self,
        incoming: Incoming,
        ttl_s: float,
        limits_version: int,
        check: RunCheck | None,
        cap: int,
        history_limit: int | None = None,
    ) -> TurnBegun:
        """Claim, admit and start a question in one store call (store.begin_turn); when it starts and
        leases are shared, hold its lease from now on. bind() then ties the lease to the turn's task.
        With `history_limit`, a start that takes the thread's store lock reads the thread's context too."""
        shared, now = self.shared, check.now if check is not None else self._clock()
        begin = TurnBegin(
            incoming.key, incoming.event_id, incoming.author.id, incoming.text, now, ttl_s, limits_version,
            check, self.owner if shared else None, self.lease_s,
            cap if shared and self._gate is not None else None, history_limit if shared else None,
        )  # fmt: skip
        sent = self._monotonic()
        begun = await self._store.begin_turn(begin)
        if begun.outcome == "started" and shared and begun.start is not None:
            self._hold(incoming, begun.start, sent)
        return begun

    def _hold(self, incoming: Incoming, started: TurnStart, sent: float) -> None:
        """Keep a started turn's lease: renew it, and watch for Stops pressed on other replicas."""
        lease = _Lease(incoming, None, sent, started.holds_thread, start=started)
        self._leases[incoming.event_id] = lease
        lease.renewer = asyncio.create_task(self._renew(lease), name=f"lease {incoming.event_id}")
        if self._stops is None or self._stops.done():
            # A context of its own: its polls belong to this replica, not to the turn that started it.
            watch = self._watch_stops()
            self._stops = asyncio.create_task(watch, name="stop requests", context=contextvars.Context())

    def bind(self, incoming: Incoming, task: asyncio.Task[Any]) -> None:
        """Tie a started turn's lease to the task that runs it: the lease ends with the task, a Stop from
        another replica cancels it, and its slot() uses the queue ticket the start took."""
        lease = self._leases.get(incoming.event_id)
        if lease is None:
            return  # one process, or not started
        lease.task = task
        started = lease.start
        if started is not None and started.ticket is not None and self._gate is not None:
            self._gate.adopt(started.ticket, started.position, task)
        task.add_done_callback(self._end_of(incoming.event_id))  # the lease lives as long as the turn

    @asynccontextmanager
    async def hold_thread(self, incoming: Incoming) -> AsyncIterator[None]:
        """Hold the thread's lock: this process's turns queue in-process, replicas through the store.

        A turn whose start took the store's lock holds the thread already and waits for nobody here:
        a turn of this process that waits in line may be waiting for exactly that lock. The others
        queue here in order, and poll the store for it, woken early when a turn here ends."""
        lease = self._leases.get(incoming.event_id)
        if lease is None:  # one process: the in-process lock is the whole lock
            async with self._local.hold(incoming.key):
                yield
            return
        async with contextlib.AsyncExitStack() as line:
            if not lease.holds_thread:
                await line.enter_async_context(self._local.hold(incoming.key))
                await self._take_thread(lease)
            try:
                yield
            except BaseException:
                # A committed turn freed its lock in the commit itself; one that failed frees it here.
                with contextlib.suppress(StoreError, asyncio.CancelledError):
                    await asyncio.shield(self._store.release_thread(incoming.key, incoming.event_id))
                raise
            finally:
                freed = self._freed.get(incoming.key)
                if freed is not None:
                    freed.set()  # the first turn here in this thread's line polls now

    async def _take_thread(self, lease: _Lease) -> None:
        key, event_id = lease.incoming.key, lease.incoming.event_id
        # Polling, because the holder may be another replica: no event of ours fires when it lets go.
        freed = self._freed[key] = asyncio.Event()  # one turn per thread polls at a time: the line's first
        try:
            while True:
                lease.holds_thread = await self._store.lock_thread(key, event_id, self._clock(), self.lease_s)
                if lease.holds_thread:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), self._poll_s)
                freed.clear()
        finally:
            if self._freed.get(key) is freed:
                del self._freed[key]

    def guard(self, incoming: Incoming, sink: ReplySink) -> ReplySink:
        """Wrap the turn's sink so it posts nothing once the turn's lease is lost or may have lapsed."""
        return _GuardedSink(sink, self, incoming.event_id) if self.shared else sink

    def may_post(self, event_id: str) -> bool:
        """True unless the turn's lease was lost, or may have lapsed by this process's clock."""
        lease = self._leases.get(event_id)
        if lease is None:
            return True  # not started yet (admission notices), or finished
        return not lease.lost and self._monotonic() - lease.renewed_at < VALID_SHARE * self.lease_s

    @property
    def running(self) -> int:
        """How many of this process's turns hold a lease now."""
        return len(self._leases)

    async def _renew(self, lease: _Lease) -> None:
        event_id = lease.incoming.event_id
        while True:
            await asyncio.sleep(self.lease_s / RENEWALS_PER_LEASE)
            sent = self._monotonic()
            lease.in_flight = True
            try:
                status, locked = await self._store.renew_turn(
                    event_id, self.owner, self._clock(), self.lease_s
                )
            except StoreError as exc:
                log.warning("could not renew the lease of turn %s: %s", event_id, exc)
                if not self.may_post(event_id):
                    self._lose(lease, "its lease lapsed while the store was unreachable")
                    return
                continue
            finally:
                lease.in_flight = False
            if status == "finished" or lease.ended:
                return
            if status == "lost" or (lease.holds_thread and not locked):
                self._lose(lease, "another replica took it over (this process stalled past its lease)")
                return
            lease.renewed_at = sent

    async def _watch_stops(self) -> None:
        """While this replica runs leased turns, cancel those someone pressed Stop on elsewhere.

        One query per replica per STOP_POLL_S, not per turn; it ends with this replica's last turn."""
        while self._leases:
            await asyncio.sleep(self._stop_poll_s)
            self._polling = True
            try:
                asked = await self._store.stop_requests(self.owner)
            except StoreError as exc:
                log.warning("could not look for Stop requests: %s", exc)
                continue
            finally:
                self._polling = False
            for event_id, by in asked:
                lease = self._leases.get(event_id)
                if lease is not None and lease.task is not None and event_id not in self.stopping:
                    log.info("turn %s stopped by %s on another replica", event_id, by)
                    self.stopping[event_id] = by  # so the turn says "stopped", not "restarting"
                    lease.task.cancel()

    def _lose(self, lease: _Lease, why: str) -> None:
        lease.lost = True
        log.error("stopping turn %s without answering: %s", lease.incoming.event_id, why)
        if lease.task is not None and not lease.task.done():
            lease.task.cancel()

    def _end_of(self, event_id: str) -> Callable[[asyncio.Task[Any]], None]:
        def end(task: asyncio.Task[Any]) -> None:
            if self._gate is not None:
                self._gate.drop_adopted(task)  # a ticket the turn never used goes back at once
            self._end(event_id)

        return end

    def _end(self, event_id: str) -> None:
        lease = self._leases.pop(event_id, None)
        if lease is None:
            return
        self.stopping.pop(event_id, None)
        if not self._leases and self._stops is not None and not self._polling:
            self._stops.cancel()  # nothing left to stop here (a poll under way ends the loop itself)
        lease.ended = True
        if lease.renewer is not None and not lease.in_flight:
            lease.renewer.cancel()


class _GuardedSink:
    """A turn's sink that drops everything once the turn may belong to another replica."""

    def __init__(self, sink: ReplySink, leases: TurnLeases, event_id: str) -> None:
        self._sink = sink
        self._leases = leases
        self._event_id = event_id

    async def progress(self, state: Progress, detail: str = "") -> None:
        if self._leases.may_post(self._event_id):
            await self._sink.progress(state, detail)

    async def post(self, reply: Reply) -> None:
        if self._leases.may_post(self._event_id):
            await self._sink.post(reply)
        else:
            log.warning("not posting %s for turn %s: its lease is gone", type(reply).__name__, self._event_id)

    async def answer_draft(self, text: str) -> None:
        draft = getattr(self._sink, "answer_draft", None)  # optional (core.sink.DraftSink)
        if draft is not None and self._leases.may_post(self._event_id):
            await draft(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)  # anything else an adapter's sink offers
