"""The agent loop: the model writes code, the code is reviewed and run, the output goes back, repeat.

Every step is reported to the sink as it happens. Whatever goes wrong, the messages returned form a
complete exchange (every tool call has its output), so the next request built from the stored history is
always valid. A failed turn stores no assistant words: the model would read an error note as its own
answer, and small models then imitate it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from mirascope import llm

from core.llm import DEADLINE_MESSAGE, LLMClient, LLMFailure, usage_tokens
from core.review.reviewer import Reviewer
from core.sink import ReplySink
from core.text import scrub_surrogates
from core.tools import (
    STEP_LIMIT_OUTPUT,
    SYSTEM_PROMPT,
    execute_code,
    fallback_answer,
    format_refusal,
    format_run,
    parse_code_arg,
)
from core.types import (
    AnswerReply,
    CodeReply,
    NoticeReply,
    Progress,
    Reply,
    ResultReply,
    Verdict,
    VerdictReply,
)
from sandbox.types import RunLimits, RunResult, SandboxUnavailable

log = logging.getLogger(__name__)

MIN_RUN_S = 1.0  # don't start a run with less time than this left before the deadline
INTERNAL_ERROR_TEXT = (
    "Something went wrong on our side while answering; the problem was logged. Please try again."
)
SANDBOX_FAILED_TEXT = "The sandbox failed while running this step; the problem was logged. Please try again."


@dataclass(frozen=True)
class TurnLimits:
    """The caps of one turn, resolved from the workspace's limits."""

    max_steps: int = 3  # tool executions per question (malformed calls count too)
    run_limits: RunLimits = field(default_factory=RunLimits)
    safety_mode: str = "standard"  # strict / standard / off


@dataclass(frozen=True)
class StepRecord:
    """One execute_code step, for the audit log."""

    step: int
    code: str
    verdict: Verdict
    result: RunResult | None  # None when refused, or when the sandbox failed (see `failure`)
    failure: str = ""  # "sandbox-unavailable", "sandbox-error" or "cancelled": an allowed run without result

    @property
    def ran(self) -> bool:
        """The program was handed to the sandbox (it may have run even if no result came back)."""
        return self.result is not None or self.failure in ("sandbox-error", "cancelled")

    @property
    def outcome(self) -> str:
        if self.result is not None:
            return self.result.outcome
        return self.failure or "refused"


@dataclass
class TurnLedger:
    """What a turn has done so far; the caller records it even when the turn fails or is cancelled."""

    records: list[StepRecord] = field(default_factory=list)
    tokens: int = 0  # agent + review tokens spent so far


@dataclass(frozen=True)
class TurnOutcome:
    """What a turn produced; the caller persists it."""

    messages: tuple[llm.Message, ...]  # new history entries for this turn, always a complete exchange
    answer: str  # the final text posted ("" when error is set)
    steps: tuple[StepRecord, ...]
    tokens: int  # agent + review tokens (0 when the server sends no usage)
    error: str | None = None  # short user-facing message when the turn failed


class Runner(Protocol):
    """Runs code in isolation (the sandbox); raises SandboxUnavailable only when it is broken."""

    async def run(self, code: str, limits: RunLimits | None = None) -> RunResult: ...


class _Abort(Exception):
    """Ends the turn early with a user-facing message (sandbox down, deadline passed)."""


class _GuardedSink:
    """Forwards to the adapter's sink; after the first failure, stops reporting but lets the turn finish."""

    def __init__(self, sink: ReplySink) -> None:
        self._sink = sink
        self._broken = False

    async def post(self, reply: Reply) -> None:
        await self._call(self._sink.post, reply)

    async def progress(self, state: Progress, detail: str = "") -> None:
        await self._call(self._sink.progress, state, detail)

    async def answer_draft(self, text: str) -> None:
        draft = getattr(self._sink, "answer_draft", None)  # optional: not every sink streams
        if draft is not None:
            await self._call(draft, text)

    async def _call(self, fn: Any, *args: Any) -> None:
        if self._broken:
            return
        try:
            await fn(*args)
        except Exception:
            self._broken = True
            log.exception("reply sink failed; no further replies for this turn")


@dataclass
class _Turn:
    """Mutable state of one turn; the execute_code tool delegates to `run_step`."""

    reviewer: Reviewer
    runner: Runner
    sink: _GuardedSink
    limits: TurnLimits
    deadline: float
    ledger: TurnLedger
    used: int = 0  # tool calls charged against max_steps

    async def run_step(self, code: str) -> str:
        """Review, run and report one program; return what the model should see."""
        n = len(self.ledger.records) + 1
        await self.sink.post(CodeReply(n, code))
        await self.sink.progress(Progress.REVIEWING, f"step {n}")
        verdict, tokens = await self.reviewer.review(code, self.limits.safety_mode, deadline=self.deadline)
        self.ledger.tokens += tokens
        await self.sink.post(VerdictReply(n, verdict))
        if not verdict.allowed:
            self.ledger.records.append(StepRecord(n, code, verdict, None))
            return format_refusal(verdict)
        remaining = self.deadline - time.monotonic()
        if remaining < MIN_RUN_S:
            raise _Abort(DEADLINE_MESSAGE)
        run_limits = self.limits.run_limits
        run_limits = run_limits.replace(timeout_s=min(run_limits.timeout_s, remaining))
        await self.sink.progress(Progress.RUNNING, f"step {n}")
        result = await self._run(n, code, verdict, run_limits)
        self.ledger.records.append(StepRecord(n, code, verdict, result))
        await self.sink.post(ResultReply(n, result))
        return format_run(result)

    async def _run(self, n: int, code: str, verdict: Verdict, limits: RunLimits) -> RunResult:
        """Run the program; a sandbox failure is recorded for the audit before the turn stops."""
        try:
            return await self.runner.run(code, limits)
        except asyncio.CancelledError:  # stopped (button) or shut down mid-run: the sandbox killed it
            self.ledger.records.append(StepRecord(n, code, verdict, None, "cancelled"))
            raise
        except SandboxUnavailable as exc:
            self.ledger.records.append(StepRecord(n, code, verdict, None, "sandbox-unavailable"))
            raise _Abort(str(exc) or "The sandbox is unavailable.") from exc
        except Exception as exc:  # the code may well have run: the audit must still show it
            log.exception("the sandbox raised while running step %d", n)
            self.ledger.records.append(StepRecord(n, code, verdict, None, "sandbox-error"))
            raise _Abort(SANDBOX_FAILED_TEXT) from exc

    async def answer_call(self, call: llm.ToolCall) -> tuple[llm.ToolOutput, bool]:
        """Produce the output for one tool call; the flag says the step limit was hit."""
        if self.used >= self.limits.max_steps:
            return _output(call, STEP_LIMIT_OUTPUT.format(n=self.limits.max_steps)), True
        self.used += 1
        code, problem = parse_code_arg(call.name, call.args)
        if code is None:
            return _output(call, problem), False
        # The tool's schema is what the model sees; running it is this turn's own step, called directly.
        return _output(call, await self.run_step(code)), False


def _user_error(exc: Exception, *, log_it: bool = True) -> str:
    """The user-facing text for a failed turn; unexpected failures are logged with their traceback."""
    if isinstance(exc, LLMFailure):
        return exc.user_message
    if isinstance(exc, _Abort):
        return str(exc)
    if log_it:
        log.error("turn failed unexpectedly", exc_info=exc)
    return INTERNAL_ERROR_TEXT


async def _consume_stream(sink: _GuardedSink, start: Any) -> Any:
    """Read a streamed reply to its end, showing its text as a draft answer as it arrives.

    A reply that turns out to call tools was not the answer: its draft is withdrawn. A retry of the
    whole call starts the draft again from its first word, which sinks handle (the text is whole).
    """
    response = await start()
    drafted = False
    async for chunk in response.chunk_stream():
        if chunk.type == "text_chunk":
            text = scrub_surrogates(response.text(sep="").lstrip())
            if text:
                drafted = True
                await sink.answer_draft(text)
    if drafted and response.tool_calls:
        await sink.answer_draft("")
    return response


def _output(call: llm.ToolCall, text: str) -> llm.ToolOutput:
    return llm.ToolOutput(id=call.id, name=call.name, result=text)


class Agent:
    """Runs turns; one instance per process, shared by all threads."""

    def __init__(
        self,
        llm: LLMClient,
        reviewer: Reviewer,
        runner: Runner,
        system_prompt: str | None = None,
        *,
        stream: bool = True,
    ) -> None:
        self._llm = llm
        self.reviewer = reviewer
        self.runner = runner  # the sandbox every turn runs in (a turn may wrap it: run_turn(runner=...))
        self._system_prompt = system_prompt or SYSTEM_PROMPT
        self._stream = stream  # stream the model's replies, showing the answer as it is written

    async def run_turn(
        self,
        history: Sequence[llm.Message],
        question: str,
        sink: ReplySink,
        limits: TurnLimits,
        *,
        deadline: float,
        ledger: TurnLedger | None = None,
        runner: Runner | None = None,
        context: str = "",
    ) -> TurnOutcome:
        """Answer `question` in the context of `history`, reporting every step to `sink`.

        `ledger` is filled as the turn goes, so the caller can record the runs and tokens of a turn
        that never returns (cancelled at shutdown). `runner` replaces the sandbox for this turn (the
        thread's workspace); `context` is appended to the system prompt and never stored.
        """
        guard = _GuardedSink(sink)
        ledger = ledger if ledger is not None else TurnLedger()
        turn = _Turn(self.reviewer, runner or self.runner, guard, limits, deadline, ledger)
        start = len(history) + 1  # the system prompt and the history are not new
        system = f"{self._system_prompt}\n{context}" if context else self._system_prompt
        messages: list[llm.Message] = [
            llm.messages.system(system),
            *history,
            llm.messages.user(question),
        ]
        error: str | None = None
        try:
            # _loop keeps this same list a complete exchange as it goes, for the error path below.
            messages, answer = await self._loop(turn, messages)
        except Exception as exc:  # whatever failed, what already ran is returned for the record
            answer, error = "", _user_error(exc)
        await guard.post(AnswerReply(answer) if error is None else NoticeReply("error", error))
        await guard.progress(Progress.DONE if error is None else Progress.FAILED)
        return TurnOutcome(tuple(messages[start:]), answer, tuple(turn.ledger.records), ledger.tokens, error)

    async def _loop(self, turn: _Turn, messages: list[llm.Message]) -> tuple[list[llm.Message], str]:
        """Call the model until it answers in text; `messages` is kept valid for the error path."""
        model = self._llm.model("agent")
        ctx = llm.Context(deps=turn)
        call, resume_call = model.context_call_async, model.context_resume_async
        if self._stream:
            call, resume_call = model.context_stream_async, model.context_resume_stream_async
        first = partial(call, list(messages), ctx=ctx, tools=[execute_code])
        response = await self._think(turn, first)
        told_limit = False
        for _ in range(turn.limits.max_steps + 2):  # each round spends budget or ends; this is a backstop
            if not response.tool_calls:
                break
            messages[:] = list(response.messages)
            if told_limit:  # the model ignored the step limit: close the exchange ourselves
                return self._give_up(turn, response)
            outputs = await self._answer_calls(turn, messages, response.tool_calls)
            told_limit = any(hit for _, hit in outputs)
            content = [out for out, _ in outputs]
            messages.append(llm.messages.user(content))
            resume = partial(resume_call, ctx=ctx, response=response, content=content)
            response = await self._think(turn, resume)
        else:
            return self._give_up(turn, response)
        text = scrub_surrogates(response.text().strip())
        if text:
            return list(response.messages), text
        text = fallback_answer([r.result for r in turn.ledger.records if r.result is not None])
        return [*response.messages[:-1], self._assistant(text)], text

    async def _answer_calls(
        self, turn: _Turn, messages: list[llm.Message], calls: Sequence[llm.ToolCall]
    ) -> list[tuple[llm.ToolOutput, bool]]:
        """Run the calls one at a time, in order; on abort, close the exchange before re-raising."""
        outputs: list[tuple[llm.ToolOutput, bool]] = []
        try:
            for call in calls:
                outputs.append(await turn.answer_call(call))
        except Exception as exc:
            reason = _user_error(exc, log_it=False)
            done = [out for out, _ in outputs]
            rest = [_output(c, f"No result: {reason}") for c in calls[len(outputs) :]]
            messages.append(llm.messages.user([*done, *rest]))
            raise
        return outputs

    async def _think(self, turn: _Turn, fn: Any) -> Any:
        await turn.sink.progress(Progress.THINKING)
        if self._stream:
            fn = partial(_consume_stream, turn.sink, fn)
        response = await self._llm.call(fn, deadline=turn.deadline)
        turn.ledger.tokens += usage_tokens(response)
        return response

    def _give_up(self, turn: _Turn, response: Any) -> tuple[list[llm.Message], str]:
        n = turn.limits.max_steps
        notice = (
            f"I used all {n} code run{'s' if n != 1 else ''} allowed for one question without reaching "
            "an answer. Ask a follow-up to let me continue."
        )
        outputs = [_output(c, STEP_LIMIT_OUTPUT.format(n=n)) for c in response.tool_calls]
        return [*response.messages, llm.messages.user(outputs), self._assistant(notice)], notice

    def _assistant(self, text: str) -> llm.AssistantMessage:
        return llm.messages.assistant(text, model_id=self._llm.model("agent").model_id, provider_id=None)
