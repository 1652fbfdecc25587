"""One turn of a conversation: admission, queueing, history, the agent loop and persistence."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from mirascope import llm

from core.agent import INTERNAL_ERROR_TEXT, Agent, StepRecord, TurnLedger, TurnLimits
from core.codec import CodecError, decode_message, encode_message
from core.files_in import FileFetcher
from core.history import trim_history
from core.lease import TurnLeases
from core.limits import Admission, EffectiveLimits, LimitsEngine, WorkspaceGate
from core.settings import Settings
from core.sink import ReplySink
from core.store.base import AuditRecord, Store, StoreError, ThreadContext, Turn, UsageRecord, Workspace
from core.threadfiles.runner import WorkspaceRunner
from core.threadfiles.service import ThreadWorkspaces
from core.types import Incoming, NoticeReply, Progress
from sandbox.types import RunLimits

log = logging.getLogger(__name__)

ABANDONED_TEXT = "The bot was restarting and had to stop working on this. Please ask again."
STOPPED_TEXT = "Stopped by {name}; the running code was ended. Ask again whenever you like."


STALE_RETRIES = 3  # begin_turn calls a question may make while admins change its workspace's limits


@dataclass(frozen=True)
class Begun:
    """A question after its first store call: a redelivery (duplicate), or claimed with its admission
    (granted, or the notice that refuses it) and, when granted, started."""

    duplicate: bool
    started: bool
    limits: EffectiveLimits
    admission: Admission
    context: ThreadContext | None = None  # the thread as the start read it, under the thread's lock


@dataclass(frozen=True)
class TurnDeps:
    """Collaborators of a turn, wired once by the composition root."""

    settings: Settings
    store: Store
    agent: Agent
    limits: LimitsEngine
    gate: WorkspaceGate
    base_limits: RunLimits
    clock: Callable[[], float] = time.time
    leases: TurnLeases | None = None  # turn leases and thread locks; None: one process, in-process locks


class TurnRunner:
    """Runs turns; the per-thread lock and the global cap live here."""

    def __init__(self, deps: TurnDeps) -> None:
        self._d = deps
        one_process = TurnLeases(deps.store, shared=False, clock=deps.clock)
        self.leases = deps.leases if deps.leases is not None else one_process
        self._global = asyncio.Semaphore(deps.settings.max_concurrent_turns)
        self.stopping = self.leases.stopping  # event id -> who pressed Stop (core.control, core.lease)
        # The agent's sandbox takes a thread's workspace (MeteredRunner passes it on to the Sandbox).
        sandbox = cast(WorkspaceRunner, deps.agent.runner)
        self._workspaces = ThreadWorkspaces(deps.store, sandbox, deps.clock)

    @property
    def deps(self) -> TurnDeps:
        return self._d

    @asynccontextmanager
    async def exclusive(self, incoming: Incoming) -> AsyncIterator[None]:
        """Start `incoming` as a turn (with its lease on replicas) and hold its thread's lock and a global
        slot as a turn does: a re-run runs under them, so no turn of its thread runs meanwhile on any
        replica, and a survivor reports it if this replica dies."""
        await self.leases.begin(incoming)
        async with self.leases.hold_thread(incoming), self._global:
            yield

    async def begin(self, incoming: Incoming) -> Begun:
        """Claim the question's event, admit it and start its turn: one store call with the workspace's
        limits as kept here, and one more read of them (then the call again) when they changed."""
        ws = Workspace.of(incoming.key)
        for _ in range(STALE_RETRIES):
            limits, version = await self._d.limits.current(ws)
            check = self._d.limits.run_check(incoming, limits)
            # Attached files go into the workspace before the thread is read: then the turn reads it.
            history = None if incoming.files else self._d.settings.history_max_messages
            begun = await self.leases.begin_question(
                incoming, self._d.settings.event_ttl_s, version, check, limits.concurrency, history
            )
            if begun.outcome != "stale":
                admission = self._d.limits.decide(limits, check, begun.admission)
                outcome = begun.outcome
                return Begun(outcome == "duplicate", outcome == "started", limits, admission, begun.context)
            self._d.limits.forget(ws)
        raise StoreError("this workspace's limits keep changing; please ask again in a moment")

    def launch(
        self, incoming: Incoming, sink: ReplySink, fetcher: FileFetcher | None, begun: Begun
    ) -> asyncio.Task[None]:
        """Run a begun question's turn as a task of its own, its lease tied to that task."""
        task = asyncio.create_task(self.run(incoming, sink, fetcher, begun), name=f"turn {incoming.key}")
        self.leases.bind(incoming, task)
        return task

    async def run(
        self, incoming: Incoming, sink: ReplySink, fetcher: FileFetcher | None, begun: Begun
    ) -> None:
        """Run a begun turn to the end (launch() starts it); every failure becomes a notice."""
        started = begun.started
        sink = self.leases.guard(incoming, sink)  # posts nothing once another replica owns the turn
        try:
            if begun.duplicate:
                return
            if not begun.admission.granted:
                await sink.post(NoticeReply("limit", begun.admission.notice))
                return
            await self._queued(incoming, sink, begun, fetcher)
        except asyncio.CancelledError:
            stopper = self.stopping.get(incoming.event_id)
            if stopper is not None:  # the Stop button, not a shutdown
                if started:
                    await self._abandon(incoming, sink, "stopped", notify=False)
                await _safe_post(sink, NoticeReply("abandoned", STOPPED_TEXT.format(name=stopper)))
                await _safe_progress(sink, Progress.FAILED, "stopped")
            elif started:
                await self._abandon(incoming, sink, "shutdown")
            raise
        except StoreError as exc:
            log.error("store error in %s: %s", incoming.key, exc)
            if started:  # close it where possible, or the next start-up reports it as interrupted
                await self._abandon(incoming, sink, "storage error", notify=False)
            await _safe_post(sink, NoticeReply("error", f"Storage problem: {exc}"))
        except Exception:
            log.exception("turn failed in %s", incoming.key)
            if started:
                await self._abandon(incoming, sink, "internal error", notify=False)
            await _safe_post(sink, NoticeReply("error", INTERNAL_ERROR_TEXT))

    async def _queued(
        self, incoming: Incoming, sink: ReplySink, begun: Begun, fetcher: FileFetcher | None
    ) -> None:
        waited = False

        async def on_queued(position: int) -> None:
            nonlocal waited
            waited = True
            await sink.progress(Progress.QUEUED, f"position {position}")
            await sink.post(
                NoticeReply(
                    "queued",
                    f"This workspace is busy; you are number {position} in the queue. "
                    "I'll start as soon as a slot frees up.",
                )
            )

        ws, limits = Workspace.of(incoming.key), begun.limits
        # Thread lock first: a second question in the same thread must not hold a workspace slot
        # while it waits for the first to finish.
        async with (
            self.leases.hold_thread(incoming),
            self._d.gate.slot(ws, limits.concurrency, on_queued),
        ):
            if self._global.locked():  # every slot of the whole bot is busy: say so, never stay silent
                waited = True
                await sink.progress(Progress.QUEUED, "the bot is busy; waiting for a free slot")
            async with self._global:
                # What the start read under the thread's lock is current unless the turn then waited
                # in a queue, where a command (reset, a file's removal) may have changed the thread.
                context = None if waited else begun.context
                await self._answer(incoming, sink, limits, fetcher, context)

    async def _answer(
        self,
        incoming: Incoming,
        sink: ReplySink,
        limits: EffectiveLimits,
        fetcher: FileFetcher | None,
        context: ThreadContext | None = None,
    ) -> None:
        s = self._d.settings
        workspace = await self._workspaces.prepare(
            incoming, sink, fetcher, limits, s.history_max_messages, context
        )
        raw = workspace.history  # read with the workspace's listing: one round trip
        history = trim_history(_decode_all(incoming, raw), s.history_max_messages, s.history_max_tokens)
        turn_limits = TurnLimits(
            max_steps=limits.steps,
            run_limits=limits.run_limits(self._d.base_limits),
            safety_mode=limits.safety,
        )
        deadline = time.monotonic() + s.turn_deadline_s
        ledger = TurnLedger()
        try:
            outcome = await self._d.agent.run_turn(
                history,
                workspace.question(_question(incoming)),
                sink,
                turn_limits,
                deadline=deadline,
                ledger=ledger,
                runner=workspace.runner,
                context=workspace.summary,
            )
        except BaseException:  # cancelled mid-turn: the runs that happened are still recorded
            await asyncio.shield(self._record_partial(incoming, ledger))
            raise
        await self._persist(incoming, outcome.messages, tuple(outcome.steps), outcome.tokens)

    async def _record_partial(self, incoming: Incoming, ledger: TurnLedger) -> None:
        if not ledger.records and not ledger.tokens:
            return  # nothing happened worth a record; the turn is abandoned as before
        try:
            await self._persist(incoming, (), tuple(ledger.records), ledger.tokens)
        except StoreError as exc:
            log.error("could not record the runs of an unfinished turn in %s: %s", incoming.key, exc)

    async def _persist(
        self, incoming: Incoming, messages: Sequence[llm.Message], steps: tuple[StepRecord, ...], tokens: int
    ) -> None:
        """Commit the turn with its tokens; if its history cannot be written, still record its runs, usage
        and tokens."""
        ws = Workspace.of(incoming.key)
        turn = self._turn_record(incoming, _encode_all(incoming, messages), steps, tokens)
        try:
            await self._d.store.commit_turn(turn)  # with the tokens' charge and the queue ticket: one trip
        except StoreError:
            # History left as it was; the runs that happened are still accounted, and the tokens charged.
            if not (turn.messages and await self._commit_without_history(turn)):
                await self._charge_tokens(ws, tokens)
            raise
        self._gave_back(turn)

    def _gave_back(self, turn: Turn) -> None:
        if turn.ticket is not None:
            self._d.gate.gave_back(turn.ticket)

    async def _commit_without_history(self, turn: Turn) -> bool:
        try:
            await self._d.store.commit_turn(dataclasses.replace(turn, messages=()))
        except StoreError as exc:
            log.error("could not record the runs of %s either: %s", turn.event_id, exc)
            return False
        self._gave_back(turn)
        return True

    async def _charge_tokens(self, ws: Workspace, tokens: int) -> None:
        try:
            await self._d.limits.record_tokens(ws, tokens)
        except StoreError as exc:
            log.error("could not charge %d tokens to %s: %s", tokens, ws, exc)

    def _turn_record(
        self, incoming: Incoming, messages: tuple[str, ...], steps: tuple[StepRecord, ...], tokens: int
    ) -> Turn:
        now = self._d.clock()
        runs = [s.result for s in steps if s.result is not None]
        usage = UsageRecord(
            workspace=Workspace.of(incoming.key),
            user_id=incoming.author.id,
            at=now,
            runs=sum(1 for s in steps if s.ran),
            refusals=sum(1 for s in steps if not s.verdict.allowed),
            tokens=tokens,
            sandbox_ms=sum(r.duration_ms for r in runs),
        )
        audits = [_audit(incoming, step, now) for step in steps]
        charge = self._d.limits.token_charge(usage.workspace, tokens)
        charges = () if charge is None else (charge,)
        ticket = self._d.gate.held_ticket()  # given back by the commit itself
        return Turn(incoming.key, incoming.event_id, messages, audits, usage, charges, ticket)

    async def _abandon(self, incoming: Incoming, sink: ReplySink, reason: str, notify: bool = True) -> None:
        try:
            await asyncio.shield(self._d.store.abandon_turn(incoming.event_id, reason, self._d.clock()))
        except (StoreError, asyncio.CancelledError):
            log.warning("could not record abandoned turn %s", incoming.event_id)
        if notify:
            await _safe_post(sink, NoticeReply("abandoned", ABANDONED_TEXT))


def _decode_all(incoming: Incoming, raw: Sequence[str]) -> list[llm.Message]:
    """Decode stored history, skipping rows that cannot be read rather than failing the thread."""
    messages = []
    for row in raw:
        try:
            messages.append(decode_message(row))
        except CodecError as exc:
            log.error("skipping an unreadable history entry in %s: %s", incoming.key, exc)
    return messages


def _encode_all(incoming: Incoming, messages: Sequence[llm.Message]) -> tuple[str, ...]:
    """Encode the turn's history; if that fails, keep none of it rather than lose the runs' records."""
    try:
        return tuple(encode_message(m) for m in messages)
    except (CodecError, TypeError, ValueError) as exc:
        log.error("cannot store the history of this turn in %s: %s", incoming.key, exc)
        return ()


def _question(incoming: Incoming) -> str:
    """Prefix the speaker so the model can tell people apart in a shared thread."""
    name = incoming.author.name or incoming.author.id
    return f"[{name}] {incoming.text.strip()}"


def _audit(incoming: Incoming, step: StepRecord, now: float) -> AuditRecord:
    result = step.result
    exit_code = result.exit_code if result is not None else None
    duration = result.duration_ms if result is not None else 0.0
    outcome = step.outcome
    return AuditRecord(
        key=incoming.key,
        user_id=incoming.author.id,
        at=now,
        step=step.step,
        code=step.code,
        allowed=step.verdict.allowed,
        risk=step.verdict.risk,
        reasons="; ".join(step.verdict.reasons),
        outcome=outcome,
        exit_code=exit_code,
        duration_ms=duration,
    )


async def _safe_post(sink: ReplySink, reply: NoticeReply) -> None:
    try:
        await sink.post(reply)
    except Exception:
        log.exception("could not post a notice to the thread")


async def _safe_progress(sink: ReplySink, state: Progress, detail: str) -> None:
    try:
        await sink.progress(state, detail)
    except Exception:
        log.exception("could not update the turn's status")
