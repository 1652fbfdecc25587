"""The storage contract, implemented by SQLiteStore (one host) and PostgresStore (several replicas).

The contract is split by concern (conversations, events and turns, audit and usage, limits and
buckets) so a caller can ask for only the part it uses; `Store` is all of them. Nothing outside
`core.store` may depend on a backend's specifics. Every guarantee that must hold across
replicas (event de-duplication, rate-limit slots) is one atomic call here, not in-process state.
All timestamps are UNIX seconds (float) passed in by the caller, so tests control the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from core.types import ThreadKey
from sandbox.types import KeptName


class StoreError(RuntimeError):
    """The store cannot serve a request (locked, full disk, corrupt file); the message is user-safe."""


@dataclass(frozen=True)
class Workspace:
    platform: str
    id: str

    @classmethod
    def of(cls, key: ThreadKey) -> Workspace:
        return cls(key.platform, key.workspace)

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"


@dataclass(frozen=True)
class AuditRecord:
    """One execution step: who asked, where, what code, the verdict and the outcome."""

    key: ThreadKey
    user_id: str
    at: float
    step: int
    code: str
    allowed: bool
    risk: str
    reasons: str  # "; "-joined
    outcome: str  # "ok", "error", "timeout", "killed:<reason>", "refused", "sandbox-unavailable"
    exit_code: int | None
    duration_ms: float
    id: int | None = None  # assigned by the store


@dataclass(frozen=True)
class UsageRecord:
    """Usage of one turn, added to the workspace's and the user's totals."""

    workspace: Workspace
    user_id: str
    at: float
    runs: int = 0
    refusals: int = 0
    tokens: int = 0
    sandbox_ms: float = 0.0
    questions: int = 1


@dataclass(frozen=True)
class UsageTotals:
    questions: int = 0
    runs: int = 0
    refusals: int = 0
    tokens: int = 0
    sandbox_ms: float = 0.0


@dataclass(frozen=True)
class LimitChange:
    workspace: Workspace
    name: str
    old: str | None
    new: str
    by: str
    at: float


@dataclass(frozen=True)
class LimitValues:
    """The values admins set for a workspace (raw strings, by name), and their version: the id of the
    workspace's newest limit change (0 before any). Every change moves the version, so a caller that
    keeps the values can ask the store to act only if they are still current (TurnBegin)."""

    values: Mapping[str, str]
    version: int = 0


@dataclass(frozen=True)
class SlotResult:
    """Outcome of an atomic try-to-count in a rate-limit window."""

    granted: bool
    used: int  # count in the window just after this call (concurrent callers' slots may be included)
    limit: int
    resets_at: float  # when the oldest counted slot leaves the window (or the window ends)


@dataclass(frozen=True)
class Window:
    """A sliding-window bucket and its limit, as one question's admission checks it."""

    bucket: str
    limit: int
    window_s: float


@dataclass(frozen=True)
class RunCheck:
    """The windows a question must pass, checked in this order by Ledger.admit_run in one call.

    tokens: refused when its total has reached the limit (nothing counted). workspace: refused when full
    (peeked first, so a full workspace never costs the user a slot). user, then workspace: one slot each.
    """

    tokens: Window
    workspace: Window
    user: Window
    now: float


RunRefusal = Literal["tokens", "workspace", "user"]


@dataclass(frozen=True)
class RunAdmission:
    """What admit_run decided: granted (refused None), or which window refused, with its count and reset."""

    refused: RunRefusal | None
    slot: SlotResult | None = None  # the refusing run window (None when granted or refused on tokens)


@dataclass(frozen=True)
class BucketCharge:
    """An amount (e.g. LLM tokens) added to a sliding-window bucket with the turn's commit."""

    bucket: str
    amount: int
    window_s: float


@dataclass(frozen=True)
class Turn:
    """Everything one finished (or failed) turn writes, persisted in one transaction."""

    key: ThreadKey
    event_id: str
    messages: Sequence[str]  # new history entries (codec JSON), appended in order
    audits: Sequence[AuditRecord]
    usage: UsageRecord
    charges: Sequence[BucketCharge] = ()  # added to their buckets in the same transaction
    ticket: int | None = None  # the workspace queue ticket the turn ran under, given back with the commit


FileOrigin = Literal["attached", "run"]


@dataclass(frozen=True)
class StoredFile:
    """One file of a thread's workspace, described without its bytes (listing never loads them)."""

    name: str  # already sanitised by the core: a plain base name
    size: int
    sha256: str
    origin: FileOrigin  # attached to a message, or written by a run
    created_at: float
    updated_at: float
    preview: str = ""  # the first lines of a text file (bounded by the core), "" for binary files


@dataclass(frozen=True)
class NewFile:
    """A file to store in a thread's workspace (replacing one of the same name)."""

    name: str
    data: bytes
    origin: FileOrigin
    preview: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ThreadState:
    """A thread's kept Python state: an opaque blob only the sandbox unpickles, and what it holds."""

    blob: bytes  # b"" when loaded without the blob
    size: int  # of the blob, also when it was not loaded
    kept: tuple[KeptName, ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()  # (name, why it was not kept)
    updated_at: float = 0.0


@dataclass(frozen=True)
class ThreadContext:
    """What a turn reads of its thread when it starts, in one call: history, files, state (no bytes)."""

    messages: tuple[str, ...]  # the newest history entries, oldest first (as load_messages)
    files: tuple[StoredFile, ...]  # as list_files
    state: ThreadState | None  # as load_state(with_blob=False)


class ThreadFiles(Protocol):
    """A thread's workspace: its files and kept state, isolated by the full ThreadKey."""

    async def thread_context(self, key: ThreadKey, history_limit: int) -> ThreadContext:
        """Read the thread's newest history, its file listing and its state's description together
        (one statement on PostgreSQL, so one snapshot and one round trip)."""
        ...

    async def load_workspace(
        self, key: ThreadKey, now: float
    ) -> tuple[list[tuple[StoredFile, bytes]], ThreadState | None]:
        """Read the thread's files with their bytes and its state with its blob, and mark the workspace
        used if it holds anything, in one call (a turn's first run)."""
        ...

    async def list_files(self, key: ThreadKey) -> list[StoredFile]:
        """Return the thread's files by name, without their bytes."""
        ...

    async def read_files(self, key: ThreadKey) -> list[tuple[StoredFile, bytes]]:
        """Return the thread's files with their bytes, by name."""
        ...

    async def put_files(self, key: ThreadKey, files: Sequence[NewFile], now: float) -> None:
        """Store files (a name already present is replaced) and mark the workspace used, atomically."""
        ...

    async def delete_files(self, key: ThreadKey, names: Sequence[str]) -> int:
        """Delete the named files of the thread (a run removed them); return how many were there."""
        ...

    async def load_state(self, key: ThreadKey, with_blob: bool = True) -> ThreadState | None:
        """Return the thread's kept state, or None when it has none."""
        ...

    async def save_state(self, key: ThreadKey, state: ThreadState, now: float) -> None:
        """Replace the thread's kept state and mark the workspace used."""
        ...

    async def touch_workspace(self, key: ThreadKey, now: float) -> None:
        """Mark the thread's workspace used now, so the retention sweep leaves it alone."""
        ...

    async def clear_workspace(self, key: ThreadKey) -> tuple[int, bool]:
        """Delete the thread's files and state; return (files removed, whether state was removed)."""
        ...

    async def sweep_workspaces(self, idle_before: float) -> int:
        """Delete every workspace last used before `idle_before`; return how many were deleted."""
        ...


class Conversations(Protocol):
    """Thread histories. Methods raise StoreError, never driver exceptions."""

    async def load_messages(self, key: ThreadKey, limit: int) -> list[str]:
        """Return the newest `limit` history entries of a thread, oldest first."""
        ...

    async def has_conversation(self, key: ThreadKey) -> bool:
        """True when the thread has stored history or a started turn, read in one snapshot."""
        ...

    async def reset_conversation(self, key: ThreadKey) -> int:
        """Forget a thread's history; return how many entries were removed."""
        ...

    async def commit_turn(self, turn: Turn) -> None:
        """Append history, audit records, usage and charges, mark the turn finished and give back its
        queue ticket, atomically."""
        ...


class Events(Protocol):
    """De-duplication and turn bookkeeping (crash/restart recovery)."""

    async def claim_event(self, platform: str, event_id: str, now: float, ttl_s: float) -> bool:
        """Record an event id; True only for the first claim within ttl_s (atomic across replicas)."""
        ...

    async def start_turn(
        self, key: ThreadKey, event_id: str, user_id: str, question: str, now: float
    ) -> None:
        """Note that a turn began, so a crash or shutdown can be reported later."""
        ...

    async def abandon_turn(self, event_id: str, reason: str, now: float) -> None: ...

    async def unfinished_turns(self) -> list[tuple[ThreadKey, str, str]]:
        """Turns started but neither committed nor abandoned: (key, event_id, question)."""
        ...


class AuditLog(Protocol):
    """The audit trail of every execution step, and usage totals."""

    async def audit(
        self, workspace: Workspace, limit: int = 20, before_id: int | None = None
    ) -> list[AuditRecord]:
        """Newest first."""
        ...

    async def audit_entry(self, workspace: Workspace, audit_id: int) -> AuditRecord | None: ...

    async def export_audit(self, workspace: Workspace | None) -> list[AuditRecord]:
        """Oldest first; all workspaces when None."""
        ...

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add usage outside a turn (e.g. tokens spent on a failed turn)."""
        ...

    async def usage(self, workspace: Workspace, since: float, user_id: str | None = None) -> UsageTotals: ...


class Ledger(Protocol):
    """Per-workspace limits with their change log, and sliding-window rate-limit buckets."""

    async def limits(self, workspace: Workspace) -> LimitValues:
        """Values admins set for this workspace (raw strings, validated by core.limits), with their
        version, read in one snapshot."""
        ...

    async def set_limit(self, change: LimitChange) -> None:
        """Store a new value and its change record atomically."""
        ...

    async def limit_changes(self, workspace: Workspace, limit: int = 20) -> list[LimitChange]: ...

    async def take_slot(self, bucket: str, limit: int, window_s: float, now: float) -> SlotResult:
        """Count one use in a sliding window if fewer than `limit` are counted; atomic."""
        ...

    async def add_to_bucket(self, bucket: str, amount: int, window_s: float, now: float) -> None:
        """Add an amount (e.g. tokens) to a sliding-window total."""
        ...

    async def bucket_total(self, bucket: str, window_s: float, now: float) -> int: ...

    async def admit_run(self, check: RunCheck) -> RunAdmission:
        """Check a question's token quota and run windows and take its slots, in one call (one round trip
        on PostgreSQL, one transaction on SQLite); the same decisions as bucket_total and take_slot made
        one after the other."""
        ...


class Leases(Protocol):
    """Leases shared by replicas: the per-workspace queue and per-thread locks.

    A holder renews its lease by polling; a lease not renewed by `now + lease_s` (a dead replica's) is
    dropped, and its slot or lock goes to the next in line.
    """

    async def gate_enter(
        self, workspace: Workspace, owner: str, cap: int, now: float, lease_s: float
    ) -> tuple[int, int]:
        """Queue a ticket and poll it at once: (ticket, 0 = running, N = queue position)."""
        ...

    async def gate_poll(
        self, ticket: int, workspace: Workspace, cap: int, now: float, lease_s: float
    ) -> int | None:
        """Renew the ticket and admit it if a slot is free: 0 = running, N = queue position, None = lost."""
        ...

    async def gate_leave(self, ticket: int) -> None: ...

    async def gate_counts(self, workspace: Workspace, now: float) -> tuple[int, int]:
        """(running, waiting) live tickets of the workspace, across replicas."""
        ...

    async def lock_thread(self, key: ThreadKey, owner: str, now: float, lease_s: float) -> bool:
        """Take or renew the thread's lock for `owner`; True if `owner` holds it now (atomic)."""
        ...


@dataclass(frozen=True)
class TurnStart:
    """What starting a leased turn got: its thread's lock, and maybe a place in the workspace's queue."""

    holds_thread: bool
    ticket: int | None = None  # queued with the start when the thread was free and a cap was given
    position: int = 0  # the ticket's place: 0 = running, N = queue position


@dataclass(frozen=True)
class TurnBegin:
    """A question's first store call: claim its event, admit it and start its turn, atomically.

    Nothing is written when the workspace's limits are no longer at `limits_version` (the caller decided
    with values since changed). `check` None claims the event only (the caller refuses the question
    itself, e.g. in a channel the limits exclude). The turn starts as start_turn_leased with `owner`,
    `lease_s` and `cap`; `owner` None starts it without a lease, as start_turn (one process on SQLite:
    PostgreSQL turns always hold a lease).
    """

    key: ThreadKey
    event_id: str
    user_id: str
    question: str
    now: float
    ttl_s: float  # how long the event's claim de-duplicates its redeliveries
    limits_version: int
    check: RunCheck | None
    owner: str | None = None
    lease_s: float = 60.0
    cap: int | None = None
    history_limit: int | None = None  # given: a start that takes the thread's lock reads its context too


# stale: the limits changed, nothing written; duplicate: the event is claimed already, nothing written;
# claimed: claimed only (check None); refused: claimed, and a window refused it (its slot taken nowhere);
# started: claimed, admitted (its slots taken) and started.
BeginOutcome = Literal["stale", "duplicate", "claimed", "refused", "started"]


@dataclass(frozen=True)
class TurnBegun:
    """What begin_turn did: refused carries the admission, started (with an owner) its TurnStart and,
    when the start took the thread's lock and a history limit was given, the thread's context as
    thread_context reads it, read under that lock."""

    outcome: BeginOutcome
    admission: RunAdmission | None = None
    start: TurnStart | None = None
    context: ThreadContext | None = None


class TurnLeases(Protocol):
    """Leases on running turns, so a surviving replica can report a dead one's turns (and only those).

    A turn's lease names its owner (a replica id). The thread's lock is taken with the turn's start and
    renewed with its lease; commit_turn and abandon_turn free it.
    """

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
        """Start the turn with a lease until now + lease_s and try its thread's lock; if it got the lock
        and `cap` is given, also queue a workspace ticket for `owner` (as gate_enter), in the same call."""
        ...

    async def begin_turn(self, begin: TurnBegin) -> TurnBegun:
        """Claim, admit and start a question in one call (one round trip on PostgreSQL, one transaction
        on SQLite): the same decisions as claim_event, admit_run and start_turn(_leased) one after the
        other, and nothing at all when its limits are stale."""
        ...

    async def renew_turn(self, event_id: str, owner: str, now: float, lease_s: float) -> tuple[str, bool]:
        """Extend the lease of a started turn `owner` owns; return (status, thread lock still ours).

        status: "renewed"; "finished" (this owner committed or abandoned it); "lost" (taken over, or
        never ours): the caller must stop the turn without posting anything more.
        """
        ...

    async def take_over_turns(
        self, now: float, reason: str, expired_only: bool = True, platforms: Sequence[str] | None = None
    ) -> list[tuple[ThreadKey, str, str]]:
        """Abandon started turns whose lease ended (every started turn if not expired_only), free their
        threads, and return them as (key, event_id, question), oldest first. Atomic: of any number of
        replicas calling this at once, each turn goes to exactly one."""
        ...

    async def release_thread(self, key: ThreadKey, event_id: str) -> None:
        """Free the thread's lock if the turn `event_id` holds it."""
        ...

    async def request_stop(
        self, key: ThreadKey, event_id: str, by: str, author_id: str, admin: bool
    ) -> str | None:
        """The Stop button for a turn another replica may run: mark the thread's started turn to stop,
        if `admin` or its asker is `author_id`. Return its asker, or None when no such turn runs."""
        ...

    async def stop_requests(self, owner: str) -> list[tuple[str, str]]:
        """(event id, who pressed Stop) of the started turns `owner` runs that were marked to stop."""
        ...


class Store(Conversations, Events, AuditLog, Ledger, Leases, TurnLeases, ThreadFiles, Protocol):
    """Conversation-shaped persistence: every part of the contract, opened and closed as one."""

    async def open(self) -> None:
        """Open the database and apply pending migrations in order, inside a transaction."""
        ...

    async def close(self) -> None: ...

    async def health(self) -> str:
        """Return "ok" when the store answers and accepts writes, else the problem in one line."""
        ...
