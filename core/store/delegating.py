"""The Store methods both backends implement alike: take a connection, call the backend's SQL module.

SQLiteStore and PostgresStore supply `_read()` (a connection for one call), `_write()` (a transaction),
the methods that must run in a transaction (`_IN_TRANSACTION`) and their SQL modules (`_sql`), whose
functions have the same names and arguments on both backends. Opening, closing, health and commit_turn
stay in each backend. The protocol's docstrings (core.store.base) say what each method promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from core.store.base import (
    AuditRecord,
    LimitChange,
    NewFile,
    RunAdmission,
    RunCheck,
    SlotResult,
    StoredFile,
    ThreadContext,
    ThreadState,
    TurnStart,
    UsageRecord,
    UsageTotals,
    Workspace,
)
from core.types import ThreadKey

SWEEP_EVERY_S = 10.0  # expired rows only cost space, so sweeping them needs no hurry


@dataclass(frozen=True)
class SqlModules:
    """One backend's SQL, by concern."""

    history: ModuleType
    ledger: ModuleType
    leases: ModuleType
    turns: ModuleType
    threads: ModuleType


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

    async def load_messages(self, key: ThreadKey, limit: int) -> list[str]:
        async with self._session("load_messages") as db:
            return await self._sql.history.load_messages(db, key, limit)

    async def has_conversation(self, key: ThreadKey) -> bool:
        async with self._session("has_conversation") as db:
            return await self._sql.history.has_conversation(db, key)

    async def reset_conversation(self, key: ThreadKey) -> int:
        async with self._session("reset_conversation") as db:
            return await self._sql.history.reset_conversation(db, key)

    # de-duplication and turn bookkeeping

    async def claim_event(self, platform: str, event_id: str, now: float, ttl_s: float) -> bool:
        async with self._session("claim_event") as db:
            if self._sweep_due("events", now):
                await self._sql.history.sweep_events(db, now)
            return await self._sql.history.claim_event(db, platform, event_id, now, ttl_s)

    async def start_turn(
        self, key: ThreadKey, event_id: str, user_id: str, question: str, now: float
    ) -> None:
        async with self._session("start_turn") as db:
            await self._sql.history.start_turn(db, key, event_id, user_id, question, now)

    async def abandon_turn(self, event_id: str, reason: str, now: float) -> None:
        """Mark a started turn abandoned with a reason and free its thread; a committed turn stays."""
        async with self._session("abandon_turn") as db:
            await self._sql.history.abandon_turn(db, event_id, reason, now)

    async def unfinished_turns(self) -> list[tuple[ThreadKey, str, str]]:
        async with self._session("unfinished_turns") as db:
            return await self._sql.history.unfinished_turns(db)

    # audit and usage

    async def audit(
        self, workspace: Workspace, limit: int = 20, before_id: int | None = None
    ) -> list[AuditRecord]:
        async with self._session("audit") as db:
            return await self._sql.ledger.audit(db, workspace, limit, before_id)

    async def audit_entry(self, workspace: Workspace, audit_id: int) -> AuditRecord | None:
        async with self._session("audit_entry") as db:
            return await self._sql.ledger.audit_entry(db, workspace, audit_id)

    async def export_audit(self, workspace: Workspace | None) -> list[AuditRecord]:
        async with self._session("export_audit") as db:
            return await self._sql.ledger.export_audit(db, workspace)

    async def add_usage(self, usage: UsageRecord) -> None:
        async with self._session("add_usage") as db:
            await self._sql.ledger.add_usage(db, usage)

    async def usage(self, workspace: Workspace, since: float, user_id: str | None = None) -> UsageTotals:
        async with self._session("usage") as db:
            return await self._sql.ledger.usage(db, workspace, since, user_id)

    # limits and rate-limit buckets

    async def limits(self, workspace: Workspace) -> dict[str, str]:
        async with self._session("limits") as db:
            return await self._sql.ledger.limits(db, workspace)

    async def set_limit(self, change: LimitChange) -> None:
        async with self._session("set_limit") as db:
            await self._sql.ledger.set_limit(db, change)

    async def limit_changes(self, workspace: Workspace, limit: int = 20) -> list[LimitChange]:
        async with self._session("limit_changes") as db:
            return await self._sql.ledger.limit_changes(db, workspace, limit)

    async def take_slot(self, bucket: str, limit: int, window_s: float, now: float) -> SlotResult:
        async with self._session("take_slot") as db:
            if self._sweep_due("buckets", now):
                await self._sql.ledger.sweep_buckets(db, now)
            return await self._sql.ledger.take_slot(db, bucket, limit, window_s, now)

    async def add_to_bucket(self, bucket: str, amount: int, window_s: float, now: float) -> None:
        async with self._session("add_to_bucket") as db:
            if self._sweep_due("buckets", now):
                await self._sql.ledger.sweep_buckets(db, now)
            await self._sql.ledger.add(db, bucket, amount, window_s, now)

    async def bucket_total(self, bucket: str, window_s: float, now: float) -> int:
        async with self._session("bucket_total") as db:
            return await self._sql.ledger.bucket_total(db, bucket, window_s, now)

    async def admit_run(self, check: RunCheck) -> RunAdmission:
        async with self._session("admit_run") as db:
            if self._sweep_due("buckets", check.now):
                await self._sql.ledger.sweep_buckets(db, check.now)
            return await self._sql.ledger.admit_run(db, check)

    # leases shared by replicas (queue tickets, thread locks)

    async def gate_enter(
        self, workspace: Workspace, owner: str, cap: int, now: float, lease_s: float
    ) -> tuple[int, int]:
        async with self._session("gate_enter") as db:
            return await self._sql.leases.gate_enter(db, workspace, owner, max(cap, 1), now, lease_s)

    async def gate_poll(
        self, ticket: int, workspace: Workspace, cap: int, now: float, lease_s: float
    ) -> int | None:
        async with self._session("gate_poll") as db:
            return await self._sql.leases.gate_poll(db, ticket, workspace, max(cap, 1), now, lease_s)

    async def gate_leave(self, ticket: int) -> None:
        async with self._session("gate_leave") as db:
            await self._sql.leases.gate_leave(db, ticket)

    async def gate_counts(self, workspace: Workspace, now: float) -> tuple[int, int]:
        async with self._session("gate_counts") as db:
            return await self._sql.leases.gate_counts(db, workspace, now)

    async def lock_thread(self, key: ThreadKey, owner: str, now: float, lease_s: float) -> bool:
        async with self._session("lock_thread") as db:
            return await self._sql.leases.lock_thread(db, key, owner, now, lease_s)

    async def unlock_thread(self, key: ThreadKey, owner: str) -> None:
        async with self._session("unlock_thread") as db:
            await self._sql.leases.unlock_thread(db, key, owner)

    # turn leases (a started turn's owner and lease; its thread lock)

    async def start_turn_leased(
        self,
        key: ThreadKey,
        event_id: str,
        user_id: str,
        question: str,
        now: float,
        owner: str,
        lease_s: float,
        cap: int | None = None,
    ) -> TurnStart:
        async with self._session("start_turn_leased") as db:
            return await self._sql.turns.start_turn_leased(
                db, key, event_id, user_id, question, now, owner, lease_s, cap
            )

    async def renew_turn(self, event_id: str, owner: str, now: float, lease_s: float) -> tuple[str, bool]:
        async with self._session("renew_turn") as db:
            return await self._sql.turns.renew_turn(db, event_id, owner, now, lease_s)

    async def take_over_turns(
        self, now: float, reason: str, expired_only: bool = True, platforms: Sequence[str] | None = None
    ) -> list[tuple[ThreadKey, str, str]]:
        async with self._session("take_over_turns") as db:
            return await self._sql.turns.take_over_turns(db, now, reason, expired_only, platforms)

    async def release_thread(self, key: ThreadKey, event_id: str) -> None:
        async with self._session("release_thread") as db:
            await self._sql.turns.release_thread(db, key, event_id)

    # a thread's workspace

    async def list_files(self, key: ThreadKey) -> list[StoredFile]:
        async with self._session("list_files") as db:
            return await self._sql.threads.list_files(db, key)

    async def read_files(self, key: ThreadKey) -> list[tuple[StoredFile, bytes]]:
        async with self._session("read_files") as db:
            return await self._sql.threads.read_files(db, key)

    async def thread_context(self, key: ThreadKey, history_limit: int) -> ThreadContext:
        async with self._session("thread_context") as db:
            return await self._sql.threads.thread_context(db, key, history_limit)

    async def load_workspace(
        self, key: ThreadKey, now: float
    ) -> tuple[list[tuple[StoredFile, bytes]], ThreadState | None]:
        async with self._session("load_workspace") as db:
            return await self._sql.threads.load_workspace(db, key, now)

    async def put_files(self, key: ThreadKey, files: Sequence[NewFile], now: float) -> None:
        async with self._session("put_files") as db:
            await self._sql.threads.put_files(db, key, files, now)

    async def delete_files(self, key: ThreadKey, names: Sequence[str]) -> int:
        async with self._session("delete_files") as db:
            return await self._sql.threads.delete_files(db, key, names)

    async def load_state(self, key: ThreadKey, with_blob: bool = True) -> ThreadState | None:
        async with self._session("load_state") as db:
            return await self._sql.threads.load_state(db, key, with_blob)

    async def save_state(self, key: ThreadKey, state: ThreadState, now: float) -> None:
        async with self._session("save_state") as db:
            await self._sql.threads.save_state(db, key, state, now)

    async def touch_workspace(self, key: ThreadKey, now: float) -> None:
        async with self._session("touch_workspace") as db:
            await self._sql.threads.touch(db, key, now)

    async def clear_workspace(self, key: ThreadKey) -> tuple[int, bool]:
        async with self._session("clear_workspace") as db:
            return await self._sql.threads.clear(db, key)

    async def sweep_workspaces(self, idle_before: float) -> int:
        async with self._session("sweep_workspaces") as db:
            return await self._sql.threads.sweep(db, idle_before)
