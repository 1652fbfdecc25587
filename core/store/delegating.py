"""The Store methods both backends implement alike: take a connection, call the backend's SQL function.

SQLiteStore and PostgresStore supply `_read()` (a connection for one call), `_write()` (a transaction),
the methods that must run in a transaction (`_IN_TRANSACTION`) and their SQL modules (`_sql`), whose
functions have the same names, arguments and defaults on both backends. Opening, closing, health and
commit_turn stay in each backend. The protocol (core.store.base) says what each method promises.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from core.store.base import RunAdmission, RunCheck, SlotResult, TurnBegin, TurnBegun

SWEEP_EVERY_S = 10.0  # expired rows only cost space, so sweeping them needs no hurry


@dataclass(frozen=True)
class SqlModules:
    """One backend's SQL, by concern."""

    history: ModuleType
    ledger: ModuleType
    leases: ModuleType
    turns: ModuleType
    threads: ModuleType


class _Sql:
    """A Store method that is "a connection, or a transaction if named in _IN_TRANSACTION, then the SQL
    function `fn` (default: the method's own name) of the backend's module `concern`"."""

    def __init__(self, concern: str, fn: str | None = None) -> None:
        self._concern = concern
        self._fn = fn
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self._fn = self._fn or name

    def __get__(self, store: DelegatingStore | None, owner: type | None = None) -> Callable[..., Any]:
        if store is None:
            return self  # type: ignore[return-value]  # looked up on the class
        sql = getattr(getattr(store._sql, self._concern), self._fn or self._name)
        name = self._name

        async def method(*args: Any, **kwargs: Any) -> Any:
            async with store._session(name) as db:
                return await sql(db, *args, **kwargs)

        method.__name__ = name
        return method


class DelegatingStore:
    """Every Store method that is "a connection (or a transaction), then one SQL function"."""

    _sql: ClassVar[SqlModules]
    _IN_TRANSACTION: ClassVar[frozenset[str]]  # method names that run in _write()
    _swept: dict[str, float]  # sweep name -> caller time of its last run

    def _read(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    def _write(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    def _session(self, op: str) -> AbstractAsyncContextManager[Any]:
        return self._write() if op in self._IN_TRANSACTION else self._read()

    def _sweep_due(self, name: str, now: float) -> bool:
        """Garbage-collect expired rows at most every SWEEP_EVERY_S (of the caller's clock), not per call."""
        last = self._swept.get(name)
        if last is not None and 0 <= now - last < SWEEP_EVERY_S:
            return False
        self._swept[name] = now
        return True

    # conversations
    load_messages = _Sql("history")
    has_conversation = _Sql("history")
    reset_conversation = _Sql("history")

    # de-duplication and turn bookkeeping
    start_turn = _Sql("history")
    abandon_turn = _Sql("history")  # frees the turn's thread lock too
    unfinished_turns = _Sql("history")

    # audit and usage
    audit = _Sql("ledger")
    audit_entry = _Sql("ledger")
    export_audit = _Sql("ledger")
    add_usage = _Sql("ledger")
    usage = _Sql("ledger")

    # limits and rate-limit buckets
    limits = _Sql("ledger")
    set_limit = _Sql("ledger")
    limit_changes = _Sql("ledger")
    bucket_total = _Sql("ledger")

    # leases shared by replicas (queue tickets, thread locks)
    gate_enter = _Sql("leases")
    gate_poll = _Sql("leases")
    gate_leave = _Sql("leases")
    gate_counts = _Sql("leases")
    lock_thread = _Sql("leases")

    # turn leases (a started turn's owner and lease; its thread lock)
    start_turn_leased = _Sql("turns")
    renew_turn = _Sql("turns")
    take_over_turns = _Sql("turns")
    release_thread = _Sql("turns")
    request_stop = _Sql("turns")
    stop_requests = _Sql("turns")

    # a thread's workspace
    list_files = _Sql("threads")
    read_files = _Sql("threads")
    thread_context = _Sql("threads")
    load_workspace = _Sql("threads")
    put_files = _Sql("threads")
    delete_files = _Sql("threads")
    load_state = _Sql("threads")
    save_state = _Sql("threads")
    touch_workspace = _Sql("threads", "touch")
    clear_workspace = _Sql("threads", "clear")
    sweep_workspaces = _Sql("threads", "sweep")

    # the calls that also sweep expired rows now and then, in the same connection

    async def claim_event(self, platform: str, event_id: str, now: float, ttl_s: float) -> bool:
        return await self._swept_call("events", now, "claim_event", platform, event_id, now, ttl_s)

    async def take_slot(self, bucket: str, limit: int, window_s: float, now: float) -> SlotResult:
        return await self._swept_call("buckets", now, "take_slot", bucket, limit, window_s, now)

    async def add_to_bucket(self, bucket: str, amount: int, window_s: float, now: float) -> None:
        await self._swept_call("buckets", now, "add", bucket, amount, window_s, now)

    async def admit_run(self, check: RunCheck) -> RunAdmission:
        return await self._swept_call("buckets", check.now, "admit_run", check)

    async def begin_turn(self, begin: TurnBegin) -> TurnBegun:
        async with self._session("begin_turn") as db:
            for sweep, concern in (("events", self._sql.history), ("buckets", self._sql.ledger)):
                if self._sweep_due(sweep, begin.now):
                    await getattr(concern, f"sweep_{sweep}")(db, begin.now)
            result: TurnBegun = await self._sql.turns.begin_turn(db, begin)
            return result

    async def _swept_call(self, sweep: str, now: float, fn: str, *args: Any) -> Any:
        concern = self._sql.history if sweep == "events" else self._sql.ledger
        async with self._session(fn) as db:
            if self._sweep_due(sweep, now):
                await getattr(concern, f"sweep_{sweep}")(db, now)
            return await getattr(concern, fn)(db, *args)
