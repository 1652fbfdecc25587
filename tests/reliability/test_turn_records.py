"""A crash never hides a run: audit rows, usage and tokens are recorded whatever fails in a turn.

Real sandbox, real SQLite file, real openai SDK against the fake LLM; the faults are at boundaries we own
(a sandbox wrapper that raises after the real run, a history write that fails, an LLM 500, a shutdown).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.wiring import open_core
from core.limits import LimitDefaults, LimitsEngine
from core.service import Codebot
from core.settings import Settings
from core.store.base import AuditRecord, UsageTotals, Workspace
from core.store.sqlite import SQLiteStore
from core.types import Author, Incoming, ResultReply, ThreadKey
from sandbox import Sandbox
from sandbox.types import RunLimits, RunResult
from tests.core.conftest import chat_is_consistent
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack, stack_environ
from tests.recording_sink import RecordingSink

KEY = ThreadKey("slack", "T1", "C1", "t1")
WS = Workspace("slack", "T1")
TOKENS_PER_CALL = 18  # the fake reports 11 prompt + 7 completion tokens for every request
CODE = "print('ran for real')\nresult = 6 * 7"


def ask(text: str, event: str) -> Incoming:
    return Incoming(KEY, Author("U1", "alice"), text, event_id=event)


class RaisesAfterRunning:
    """The real sandbox, but the result cannot be read back (as a forged result trailer once did)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self.ran: list[RunResult] = []

    async def run(self, code: str, limits: RunLimits | None = None, *, workspace: object = None) -> RunResult:
        self.ran.append(await self._sandbox.run(code, limits))
        raise ValueError("malformed result trailer")


@asynccontextmanager
async def core_with_runner(tmp_path: Path, llm_url: str) -> AsyncIterator[tuple[Codebot, RaisesAfterRunning]]:
    environ = stack_environ(tmp_path, llm_url, CODEBOT_SANDBOX_POOL_SIZE="0")
    settings = Settings(_env_file=None, **environ)  # type: ignore[call-arg]
    async with Sandbox(settings.sandbox) as sandbox:
        runner = RaisesAfterRunning(sandbox)
        async with open_core(settings, runner=runner) as core:
            yield core, runner


async def records(db: Path) -> tuple[list[AuditRecord], UsageTotals, int, list[str]]:
    """Audit rows, usage totals, today's tokens and the thread's history, read from the SQLite file."""
    store = SQLiteStore(db)
    await store.open()
    try:
        audits = await store.audit(WS, 20)
        usage = await store.usage(WS, 0)
        window = await LimitsEngine(store, LimitDefaults()).window_usage(WS, "U1")
        history = await store.load_messages(KEY, 100)
        return audits, usage, window.tokens_today, history
    finally:
        await store.close()


async def test_a_sandbox_that_raises_after_the_code_ran_still_records_the_run(tmp_path):
    async with FakeOpenAI() as fake, core_with_runner(tmp_path, fake.base_url) as (core, runner):
        fake.enqueue_tool_call(CODE)
        sink = RecordingSink()
        await core.submit(ask("what is 6*7", "e1"), sink)
        await core.wait_idle(60)
    assert runner.ran and "ran for real" in runner.ran[0].stdout  # the code did run
    [notice] = sink.notices
    assert notice.kind == "error" and "sandbox failed" in notice.text
    audits, usage, tokens, history = await records(tmp_path / "codebot.db")
    [audit] = audits
    assert audit.code == CODE and audit.allowed and audit.outcome == "sandbox-error"
    assert (usage.questions, usage.runs, usage.refusals) == (1, 1, 0)
    assert usage.tokens == tokens == 2 * TOKENS_PER_CALL  # the agent's call and the review's
    decoded = [json.loads(m) for m in history]
    assert decoded and "what is 6*7" in json.dumps(decoded)  # the question stays in the thread


async def test_a_history_write_that_fails_still_records_runs_usage_and_tokens(tmp_path):
    db = tmp_path / "codebot.db"
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_text("hello")
        await core.submit(ask("hi", "e0"), RecordingSink())
        await core.wait_idle(30)
        with sqlite3.connect(db) as conn:  # every new history row now fails, as a damaged page would
            conn.execute(
                "CREATE TRIGGER no_history BEFORE INSERT ON messages "
                "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
            )
        fake.enqueue_tool_call(CODE)
        fake.enqueue_text("It is 42.")
        sink = RecordingSink()
        await core.submit(ask("what is 6*7", "e1"), sink)
        await core.wait_idle(30)
    assert sink.answers == ["It is 42."]
    assert "Storage problem" in sink.notices[-1].text
    audits, usage, tokens, history = await records(db)
    [audit] = audits
    assert audit.code == CODE and audit.outcome == "ok"
    assert (usage.questions, usage.runs) == (2, 1)
    assert usage.tokens == tokens == 4 * TOKENS_PER_CALL  # "hi" + two agent calls + one review
    assert len(history) == 2  # the failed turn left no half of itself in the history


async def test_an_llm_failure_after_a_run_records_the_run(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_tool_call(CODE)
        fake.enqueue_error(500)
        fake.enqueue_error(500)  # CODEBOT_LLM_RETRIES=1: both attempts fail
        sink = RecordingSink()
        await core.submit(ask("what is 6*7", "e1"), sink)
        await core.wait_idle(30)
        fake.enqueue_text("still here")
        await core.submit(ask("again?", "e2"), RecordingSink())
        await core.wait_idle(30)
    assert sink.of(ResultReply) and sink.notices[-1].kind == "error"
    audits, usage, tokens, _ = await records(tmp_path / "codebot.db")
    assert [a.outcome for a in audits] == ["ok"]
    assert usage.runs == 1 and usage.tokens == tokens == 3 * TOKENS_PER_CALL
    assert chat_is_consistent(fake.agent_requests[-1]["messages"])


async def test_a_turn_cancelled_at_shutdown_after_a_run_records_the_run(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_tool_call(CODE)
        fake.enqueue_delay(30)  # the model never answers after the run
        fake.enqueue_text("too late")
        sink = RecordingSink()
        await core.submit(ask("what is 6*7", "e1"), sink)
        await sink.wait_for(ResultReply, timeout=60)
        await fake.wait_for_requests(3, timeout=30)  # agent, review, then the hanging agent call
        await core.shutdown(grace_s=0)
        await asyncio.wait_for(core.wait_idle(), 30)
    assert [n.kind for n in sink.notices] == ["abandoned"]
    audits, usage, tokens, _ = await records(tmp_path / "codebot.db")
    assert [a.outcome for a in audits] == ["ok"]
    assert usage.runs == 1 and usage.tokens == tokens == 2 * TOKENS_PER_CALL
