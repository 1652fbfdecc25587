"""One turn of a conversation: admission, queueing, history, the agent loop and persistence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from mirascope import llm

from core.agent import Agent, StepRecord, TurnLimits, TurnOutcome
from core.codec import CodecError, decode_message, encode_message
from core.history import trim_history
from core.limits import EffectiveLimits, LimitsEngine, WorkspaceGate
from core.locks import KeyedLocks
from core.settings import Settings
from core.sink import ReplySink
from core.store.base import AuditRecord, Store, StoreError, Turn, UsageRecord, Workspace
from core.types import Incoming, NoticeReply, Progress
from sandbox.types import RunLimits

log = logging.getLogger(__name__)

ABANDONED_TEXT = "The bot was restarting and had to stop working on this. Please ask again."
INTERNAL_ERROR_TEXT = (
    "Something went wrong on our side while answering; the problem was logged. Please try again."
)


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


class TurnRunner:
    """Runs turns; the per-thread lock and the global cap live here."""

    def __init__(self, deps: TurnDeps) -> None:
        self._d = deps
        self._threads = KeyedLocks()
        self._global = asyncio.Semaphore(deps.settings.max_concurrent_turns)

    async def run(self, incoming: Incoming, sink: ReplySink) -> None:
        """Run one turn to the end; every failure becomes a notice in the thread."""
        started = False
        try:
            limits = await self._d.limits.effective(Workspace.of(incoming.key))
            admission = await self._d.limits.admit(incoming, limits)
            if not admission.granted:
                await sink.post(NoticeReply("limit", admission.notice))
                return
            await self._d.store.start_turn(
                incoming.key, incoming.event_id, incoming.author.id, incoming.text, self._d.clock()
            )
            started = True
            await self._queued(incoming, sink, limits)
        except asyncio.CancelledError:
            if started:
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

    async def _queued(self, incoming: Incoming, sink: ReplySink, limits: EffectiveLimits) -> None:
        async def on_queued(position: int) -> None:
            await sink.progress(Progress.QUEUED, f"position {position}")
            await sink.post(
                NoticeReply(
                    "queued",
                    f"This workspace is busy; you are number {position} in the queue. "
                    "I'll start as soon as a slot frees up.",
                )
            )

        ws = Workspace.of(incoming.key)
        # Thread lock first: a second question in the same thread must not hold a workspace slot
        # while it waits for the first to finish.
        async with (
            self._threads.hold(incoming.key),
            self._d.gate.slot(ws, limits.concurrency, on_queued),
        ):
            if self._global.locked():  # every slot of the whole bot is busy: say so, never stay silent
                await sink.progress(Progress.QUEUED, "the bot is busy; waiting for a free slot")
            async with self._global:
                await self._answer(incoming, sink, limits)

    async def _answer(self, incoming: Incoming, sink: ReplySink, limits: EffectiveLimits) -> None:
        s = self._d.settings
        raw = await self._d.store.load_messages(incoming.key, s.history_max_messages)
        history = trim_history(_decode_all(incoming, raw), s.history_max_messages, s.history_max_tokens)
        turn_limits = TurnLimits(
            max_steps=limits.steps,
            run_limits=limits.run_limits(self._d.base_limits),
            safety_mode=limits.safety,
        )
        deadline = time.monotonic() + s.turn_deadline_s
        outcome = await self._d.agent.run_turn(
            history, _question(incoming), sink, turn_limits, deadline=deadline
        )
        await self._persist(incoming, outcome)

    async def _persist(self, incoming: Incoming, outcome: TurnOutcome) -> None:
        now = self._d.clock()
        ws = Workspace.of(incoming.key)
        audits = [_audit(incoming, step, now) for step in outcome.steps]
        runs = [s.result for s in outcome.steps if s.result is not None]
        usage = UsageRecord(
            workspace=ws,
            user_id=incoming.author.id,
            at=now,
            runs=len(runs),
            refusals=sum(1 for s in outcome.steps if s.result is None),
            tokens=outcome.tokens,
            sandbox_ms=sum(r.duration_ms for r in runs),
        )
        turn = Turn(
            key=incoming.key,
            event_id=incoming.event_id,
            messages=tuple(encode_message(m) for m in outcome.messages),
            audits=audits,
            usage=usage,
        )
        await self._d.store.commit_turn(turn)
        if outcome.tokens:
            await self._d.limits.record_tokens(ws, outcome.tokens)

    async def _abandon(self, incoming: Incoming, sink: ReplySink, reason: str, notify: bool = True) -> None:
        try:
            await asyncio.shield(self._d.store.abandon_turn(incoming.event_id, reason, self._d.clock()))
        except (StoreError, asyncio.CancelledError):
            log.warning("could not record abandoned turn %s", incoming.event_id)
        if notify:
            await _safe_post(sink, NoticeReply("abandoned", ABANDONED_TEXT))


def _decode_all(incoming: Incoming, raw: list[str]) -> list[llm.Message]:
    """Decode stored history, skipping rows that cannot be read rather than failing the thread."""
    messages = []
    for row in raw:
        try:
            messages.append(decode_message(row))
        except CodecError as exc:
            log.error("skipping an unreadable history entry in %s: %s", incoming.key, exc)
    return messages


def _question(incoming: Incoming) -> str:
    """Prefix the speaker so the model can tell people apart in a shared thread."""
    name = incoming.author.name or incoming.author.id
    return f"[{name}] {incoming.text.strip()}"


def _audit(incoming: Incoming, step: StepRecord, now: float) -> AuditRecord:
    result = step.result
    if result is None:
        outcome, exit_code, duration = "refused", None, 0.0
    else:
        outcome, exit_code, duration = result.outcome, result.exit_code, result.duration_ms
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
