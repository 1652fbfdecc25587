"""Observation seams: wrappers that record metrics and log context around the core's collaborators.

Each wraps one collaborator the composition root already builds (turn runner, reply sink, sandbox,
store, LLM client), so the core's own modules stay free of metrics calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mirascope import llm

from core import turn_cost
from core.files_in import FileFetcher
from core.llm import LLMClient, Which
from core.logs import turn_context
from core.metrics import Metrics
from core.settings import Settings
from core.sink import ReplySink
from core.turn import Begun, TurnDeps, TurnRunner
from core.types import AnswerReply, CodeReply, Incoming, NoticeReply, Progress, Reply, VerdictReply
from sandbox.types import RunLimits, RunResult, RunWorkspace, SandboxUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# The notice a turn ends with says how it ended; an answer means it ended well.
_NOTICE_OUTCOME = {"error": "error", "limit": "limited", "abandoned": "abandoned"}


class MeteredSink:
    """Forwards to the adapter's sink, noting steps, refusals, the turn's outcome and platform failures."""

    def __init__(self, sink: ReplySink, metrics: Metrics, platform: str) -> None:
        self._sink = sink
        self._m = metrics
        self._platform = platform
        self.outcome = "none"
        self.steps = 0
        self.answering = False  # past the queue: the model is working on it
        self.failed = False

    async def progress(self, state: Progress, detail: str = "") -> None:
        if state is not Progress.QUEUED and not self.answering:
            self.answering = True
            self._m.turn_waiting(-1)
            self._m.turn_running(1)
        await self._forward(self._sink.progress(state, detail))

    async def answer_draft(self, text: str) -> None:
        draft = getattr(self._sink, "answer_draft", None)  # optional (core.sink.DraftSink)
        if draft is not None:
            await self._forward(draft(text))

    async def post(self, reply: Reply) -> None:
        self._note(reply)
        try:
            await self._forward(self._sink.post(reply))
        except Exception:
            if isinstance(reply, AnswerReply | NoticeReply) and self.outcome != "none":
                self.outcome = "undelivered"  # how the turn ended never reached the thread
            raise

    def _note(self, reply: Reply) -> None:
        if isinstance(reply, CodeReply):
            self.steps += 1
            self._m.step()
        elif isinstance(reply, VerdictReply) and not reply.verdict.allowed:
            self._m.refusal(reply.verdict.risk)
        elif isinstance(reply, AnswerReply):
            self.outcome = "ok"
        elif isinstance(reply, NoticeReply) and reply.kind in _NOTICE_OUTCOME:
            self.outcome = _NOTICE_OUTCOME[reply.kind]

    async def _forward(self, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:
            # The sink absorbs what it can; what escapes is a platform call that failed for good.
            self.failed = True
            self._m.platform_error(self._platform)
            raise


class ObservedTurns(TurnRunner):
    """The turn runner, with the turn's log context set and its outcome, duration and queueing metered."""

    def __init__(self, deps: TurnDeps, metrics: Metrics) -> None:
        super().__init__(deps)
        self._m = metrics

    async def run(
        self, incoming: Incoming, sink: ReplySink, fetcher: FileFetcher | None, begun: Begun
    ) -> None:
        metered = MeteredSink(sink, self._m, incoming.key.platform)
        start = time.monotonic()
        self._m.turn_waiting(1)
        cost = turn_cost.current()  # opened by Codebot.submit, so the question's first call is counted too
        with turn_context(str(incoming.key), incoming.event_id), _cost_scope(cost) as cost:
            log.info("turn started")
            try:
                await super().run(incoming, metered, fetcher, begun)
            except asyncio.CancelledError:
                metered.outcome = "abandoned"
                raise
            finally:
                self._finish(metered, incoming.key.platform, time.monotonic() - start)
                self._m.turn_store(cost.seconds)

    def _finish(self, metered: MeteredSink, platform: str, seconds: float) -> None:
        if metered.answering:
            self._m.turn_running(-1)
        else:
            self._m.turn_waiting(-1)
        outcome = metered.outcome
        if outcome == "none" and metered.failed:
            outcome = "undelivered"  # the sink broke before the turn could say how it ended
        self._m.turn_finished(platform, outcome, seconds)
        log.info("turn finished: %s in %.1f s, %d step(s)", outcome, seconds, metered.steps)


def _cost_scope(cost: turn_cost.TurnCost | None) -> contextlib.AbstractContextManager[turn_cost.TurnCost]:
    """The tally the turn was submitted with, or a fresh one (a turn started without submit)."""
    return contextlib.nullcontext(cost) if cost is not None else turn_cost.tally()


class MeteredRunner:
    """The sandbox, with run outcomes, seconds and kills metered; remembers whether it is broken."""

    def __init__(self, runner: Any, metrics: Metrics) -> None:
        self.inner = runner
        self._m = metrics
        self.broken: str | None = None  # why the last run could not start, until one succeeds

    async def run(
        self, code: str, limits: RunLimits | None = None, *, workspace: RunWorkspace | None = None
    ) -> RunResult:
        try:
            result: RunResult = await self.inner.run(code, limits, workspace=workspace)
        except SandboxUnavailable as exc:
            self.broken = str(exc) or "the sandbox is unavailable"
            self._m.sandbox_unavailable()
            raise
        self.broken = None
        self._m.sandbox_run(result.outcome, result.duration_ms / 1000, result.killed_reason)
        return result


class MeteredStore:
    """The store, with each call's latency and failures metered by method name."""

    def __init__(self, store: Any, metrics: Metrics) -> None:
        self.inner = store
        self._m = metrics

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(fn):
            return fn

        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            return await _timed(lambda: fn(*args, **kwargs), lambda s, exc: self._record(name, s, exc))

        setattr(self, name, timed)  # built once per method
        return timed

    def _record(self, op: str, seconds: float, exc: BaseException | None) -> None:
        self._m.store_call(op, seconds, exc is not None)
        turn_cost.note(seconds)


async def _timed(fn: Callable[[], Awaitable[T]], record: Callable[[float, BaseException | None], None]) -> T:
    """Await `fn()`, then record its seconds and what it raised (None when it returned)."""
    start = time.monotonic()
    try:
        result = await fn()
    except BaseException as exc:
        record(time.monotonic() - start, exc)
        raise
    record(time.monotonic() - start, None)
    return result


_LLM_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (llm.RateLimitError, "rate_limit"),
    (llm.ServerError, "server"),
    (llm.TimeoutError, "timeout"),
    (llm.ConnectionError, "connection"),
    (llm.ResponseValidationError, "garbled"),
    (json.JSONDecodeError, "garbled"),
    (llm.AuthenticationError, "auth"),
    (llm.PermissionError, "auth"),
    (llm.NotFoundError, "not_found"),
    (llm.BadRequestError, "bad_request"),
    (asyncio.CancelledError, "cancelled"),  # the turn's deadline (or shutdown) cut the attempt short
)


def llm_error_kind(exc: BaseException) -> str:
    """A fixed-set name for a failed LLM attempt."""
    for kind, name in _LLM_KINDS:
        if isinstance(exc, kind):
            return name
    return "other"


class MeteredLLMClient(LLMClient):
    """The LLM client, with the latency and failure kind of every attempt (retries included) metered."""

    def __init__(self, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._m = metrics

    async def call(self, fn: Callable[[], Awaitable[T]], *, deadline: float, which: Which = "agent") -> T:
        def record(seconds: float, exc: BaseException | None) -> None:
            self._m.llm_attempt(seconds, None if exc is None else llm_error_kind(exc))

        return await super().call(lambda: _timed(fn, record), deadline=deadline, which=which)
