"""What the buttons on a turn's messages do: stop a running turn, run one step's code again.

A button comes back from the chat client carrying a short reference, and that reference is untrusted:
anyone can forge an action payload with any value. So a reference only *selects* (a running turn by its
event id, a stored run by its step and a digest of its code); the code that runs again is always read
from the audit log, never taken from the client, and it is reviewed again and counted against the
limits like any other run. Only the asker and admins may stop or re-run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from core.agent import StepRecord
from core.limits import EffectiveLimits
from core.sink import ReplySink
from core.store.base import AuditRecord, StoreError, Turn, UsageRecord, Workspace
from core.turn import TurnDeps, _audit
from core.types import (
    Author,
    CodeReply,
    Incoming,
    NoticeReply,
    Progress,
    ResultReply,
    ThreadKey,
    VerdictReply,
)

log = logging.getLogger(__name__)

_TURN_REF = re.compile(r"[A-Za-z0-9._:-]{1,80}")
_STEP_REF = re.compile(r"([1-9][0-9]{0,2})\.([0-9a-f]{16})")
AUDIT_SCAN = 500  # newest audit rows of the workspace searched for a re-run's code
AUDIT_PAGE = 100
FINISHED = "That answer has already finished; there is nothing to stop."
STOP_WAIT_S = 30.0  # how long a stop waits for the turn to wind down (the sandbox kill is immediate)

NOT_YOURS = "Only the person who asked (or an admin) can {what} this."

# Starts the re-run as a turn and holds its thread as a turn does (core.turn.TurnRunner.exclusive).
Exclusive = Callable[[Incoming], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class ControlResult:
    """What the presser is told, privately (ephemeral); the thread hears about it separately."""

    text: str
    ok: bool = True


@dataclass(frozen=True)
class Rerun:
    """A re-run that passed every check and may be scheduled."""

    incoming: Incoming  # the re-run as a pseudo-question, so it is tracked and stoppable like a turn
    step: int
    code: str


def step_ref(step: int, code: str) -> str:
    """The reference a Re-run button carries: the step number and a digest of the code that ran."""
    return f"{step}.{hashlib.sha256(code.encode()).hexdigest()[:16]}"


def valid_turn_ref(ref: str) -> bool:
    return isinstance(ref, str) and _TURN_REF.fullmatch(ref) is not None


def parse_step_ref(ref: str) -> tuple[int, str] | None:
    match = _STEP_REF.fullmatch(ref) if isinstance(ref, str) else None
    return (int(match[1]), match[2]) if match else None


class Control:
    """Stop and re-run, over the running turns of this process and the audit log of the store."""

    def __init__(
        self,
        deps: TurnDeps,
        stopping: dict[str, str],
        is_admin: Callable[[Author], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._d = deps
        # Shared with the TurnRunner: event id -> who pressed Stop, so the cancelled turn records and
        # tells the thread that it was stopped, not abandoned by a shutdown.
        self._stopping = stopping
        self._is_admin = is_admin
        self._clock = clock
        self._rerunning: set[tuple[ThreadKey, str]] = set()

    async def stop(
        self,
        key: ThreadKey,
        ref: str,
        author: Author,
        running: Mapping[asyncio.Task[None], tuple[Incoming, ReplySink]],
    ) -> ControlResult:
        """Cancel the running turn `ref` of thread `key`: its sandbox run is killed on cancellation."""
        if not valid_turn_ref(ref):
            return ControlResult("That button is not valid.", ok=False)
        found = [(t, inc) for t, (inc, _) in running.items() if inc.event_id == ref and inc.key == key]
        if not found:
            return await self._stop_elsewhere(key, ref, author)
        task, incoming = found[0]
        if author.id != incoming.author.id and not self._is_admin(author):
            return ControlResult(NOT_YOURS.format(what="stop"), ok=False)
        if ref in self._stopping:
            return ControlResult("Already stopping.")
        self._stopping[ref] = author.name or author.id
        try:
            task.cancel()
            await asyncio.wait([task], timeout=STOP_WAIT_S)
        finally:
            self._stopping.pop(ref, None)
        log.info("turn %s stopped by %s", ref, author.id)
        return ControlResult("Stopped.")

    async def _stop_elsewhere(self, key: ThreadKey, ref: str, author: Author) -> ControlResult:
        """Not running here: on replicas, mark it in the store for the replica that runs it (core.lease)."""
        leases = self._d.leases
        if leases is None or not leases.shared:
            return ControlResult(FINISHED)
        by = author.name or author.id
        asker = await self._d.store.request_stop(key, ref, by, author.id, self._is_admin(author))
        if asker is None:
            return ControlResult(FINISHED)
        if asker != author.id and not self._is_admin(author):
            return ControlResult(NOT_YOURS.format(what="stop"), ok=False)
        log.info("turn %s: stop requested by %s for the replica that runs it", ref, author.id)
        return ControlResult("Stopping; the thread will say so in a moment.")

    async def prepare_rerun(
        self, key: ThreadKey, ref: str, author: Author, message_id: str, press_id: str
    ) -> Rerun | str:
        """Check a Re-run press; return the re-run to schedule, or what to tell the presser.

        `message_id` names the message the button is on: each button re-runs once (a re-run's own
        result has a new button). `press_id` is unique per press.
        """
        parsed = parse_step_ref(ref)
        if parsed is None or not (valid_turn_ref(message_id) and valid_turn_ref(press_id)):
            return "That button is not valid."
        step, digest = parsed
        record = await self._find_run(key, step, digest)
        if record is None:
            return (
                "I can't find that run any more (the answer may still be in progress, or the run is too "
                "old); ask the question again."
            )
        if author.id != record.user_id and not self._is_admin(author):
            return NOT_YOURS.format(what="re-run")
        if not await self._d.store.has_conversation(key):
            return "This thread was reset since that run; ask the question again to run it."
        if (key, ref) in self._rerunning:
            return "That step is already running again."
        # One re-run per button, across replicas and restarts: a second press finds the claim taken.
        claim = f"rerun:{key}:{message_id}:{ref}"
        if not await self._d.store.claim_event(
            key.platform, claim, self._clock(), self._d.settings.event_ttl_s
        ):
            return "That step was already re-run; use the Re-run button on the newer run."
        incoming = Incoming(key, author, f"(re-run of step {step})", f"{claim}:{press_id}"[:300])
        return Rerun(incoming, step, record.code)

    async def _find_run(self, key: ThreadKey, step: int, digest: str) -> AuditRecord | None:
        ws, before = Workspace.of(key), None
        for _ in range(AUDIT_SCAN // AUDIT_PAGE):
            page = await self._d.store.audit(ws, AUDIT_PAGE, before)
            for record in page:
                if (
                    record.key == key
                    and record.allowed
                    and step_ref(record.step, record.code) == (f"{step}.{digest}")
                ):
                    return record
            if len(page) < AUDIT_PAGE:
                return None
            before = page[-1].id
        return None

    async def rerun(self, job: Rerun, sink: ReplySink, exclusive: Exclusive) -> None:
        """Review and run the stored code again in a fresh sandbox, as a new step in the thread."""
        key = (job.incoming.key, step_ref(job.step, job.code))
        self._rerunning.add(key)
        try:
            await self._rerun(job, sink, exclusive)
        finally:
            self._rerunning.discard(key)

    async def _rerun(self, job: Rerun, sink: ReplySink, exclusive: Exclusive) -> None:
        d, incoming = self._d, job.incoming
        limits = await d.limits.effective(Workspace.of(incoming.key))
        admission = await d.limits.admit(incoming, limits)
        if not admission.granted:
            await sink.post(NoticeReply("limit", admission.notice))
            return
        name = incoming.author.name or incoming.author.id
        await sink.post(NoticeReply("info", f"Running step {job.step} again for {name}."))
        try:
            async with exclusive(incoming):  # started, leased and holding the thread, across replicas
                record = await self._review_and_run(job, sink, limits)
        except BaseException as exc:  # stopped, shut down or failed: the started re-run is closed
            reason = "stopped" if incoming.event_id in self._stopping else type(exc).__name__
            try:
                await asyncio.shield(d.store.abandon_turn(incoming.event_id, reason, self._clock()))
            except (StoreError, asyncio.CancelledError):
                log.warning("could not record the end of re-run %s", incoming.event_id)
            raise
        now = self._clock()
        usage = UsageRecord(
            Workspace.of(incoming.key), incoming.author.id, now, runs=int(record.ran),
            refusals=int(not record.verdict.allowed), questions=0,
            sandbox_ms=record.result.duration_ms if record.result else 0.0,
        )  # fmt: skip
        await d.store.commit_turn(
            Turn(incoming.key, incoming.event_id, (), [_audit(incoming, record, now)], usage)
        )

    async def _review_and_run(self, job: Rerun, sink: ReplySink, limits: EffectiveLimits) -> StepRecord:
        n, code = job.step, job.code
        await sink.post(CodeReply(n, code))
        await sink.progress(Progress.REVIEWING, f"step {n} again")
        deadline = time.monotonic() + self._d.settings.turn_deadline_s
        verdict, tokens = await self._d.agent.reviewer.review(code, limits.safety, deadline=deadline)
        await self._d.limits.record_tokens(Workspace.of(job.incoming.key), tokens)
        await sink.post(VerdictReply(n, verdict))
        if not verdict.allowed:
            await sink.progress(Progress.DONE)
            return StepRecord(n, code, verdict, None)
        await sink.progress(Progress.RUNNING, f"step {n} again")
        run_limits = limits.run_limits(self._d.base_limits)
        result = await self._d.agent.runner.run(code, run_limits)
        await sink.post(ResultReply(n, result))
        await sink.progress(Progress.DONE)
        return StepRecord(n, code, verdict, result)


async def guarded(run: Awaitable[None], sink: ReplySink, what: str) -> None:
    """Run a control job; a failure becomes a notice in the thread, never an exception in the bot."""
    try:
        await run
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed", what)
        try:
            await sink.post(NoticeReply("error", f"The {what} failed; the problem was logged."))
        except Exception:
            log.exception("could not post a notice to the thread")
