"""Stop and Re-run as core operations: real store, real sandbox, real openai SDK against the fake LLM."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from core.control import step_ref
from core.store.base import Workspace
from core.store.sqlite import SQLiteStore
from core.types import (
    AnswerReply,
    Author,
    CodeReply,
    Incoming,
    NoticeReply,
    Progress,
    ResultReply,
    ThreadKey,
    VerdictReply,
)
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack, until
from tests.recording_sink import RecordingSink

ALICE = Author("U1", "alice")
BOB = Author("U2", "bob")
ADMIN = Author("UOPS", "ops")
KEY = ThreadKey("slack", "T1", "C1", "t1")
CODE = "print(6 * 7)"


def ask(text: str, event: str = "ev-1") -> Incoming:
    return Incoming(KEY, ALICE, text, event_id=event)


def sandbox_processes() -> list[int]:
    """bwrap processes descended from this test process that run a sandbox (the core's runs under test).

    A bwrap with no child is the parked next cold start (sandbox/parked.py): it has created nothing yet.
    """
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            names[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    me = os.getpid()

    def descends(pid: int) -> bool:
        seen = 0
        while pid > 1 and seen < 64:
            pid, seen = parents.get(pid, 0), seen + 1
            if pid == me:
                return True
        return False

    started = set(parents.values())
    return [
        p for p, name in names.items() if "bwrap" in os.path.basename(name) and p in started and descends(p)
    ]


def turn_rows(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT event_id, state, reason FROM turns ORDER BY started_at").fetchall()


async def test_stop_by_the_asker_kills_the_running_code_and_records_the_turn_stopped(tmp_path):
    env = {"CODEBOT_LIMIT_TIMEOUT": "60s"}
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url, **env) as core:
        fake.enqueue_tool_call("import time\nprint('started', flush=True)\ntime.sleep(55)\nprint('late')")
        fake.enqueue_text("should never be posted")
        sink = RecordingSink()
        assert (await core.submit(ask("sleep a while"), sink)).accepted
        await until(lambda: Progress.RUNNING in sink.progress_states and sandbox_processes())
        refused = await core.stop(KEY, "ev-1", BOB)
        assert not refused.ok and "Only the person who asked" in refused.text
        assert sandbox_processes()  # bob's press changed nothing
        stopped = await core.stop(KEY, "ev-1", ALICE)
        assert stopped.ok and stopped.text == "Stopped."
        assert core.busy == 0
        await until(lambda: not sandbox_processes())
        again = await core.stop(KEY, "ev-1", ALICE)
        assert "already finished" in again.text
    assert not sink.of(AnswerReply) and not sink.of(ResultReply)
    assert any("Stopped by alice" in n.text for n in sink.notices)
    assert sink.progress_states[-1] is Progress.FAILED
    # The turn is closed (not left for the next start-up to report) and the killed run is audited.
    assert [state for _, state, _ in turn_rows(tmp_path / "codebot.db")] == ["committed"]
    with sqlite3.connect(tmp_path / "codebot.db") as conn:
        audit = conn.execute("SELECT outcome FROM audit").fetchall()
        runs = conn.execute("SELECT SUM(runs) FROM usage").fetchone()
    assert audit == [("cancelled",)] and runs == (1,)


async def test_an_admin_may_stop_someone_elses_turn(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url, CODEBOT_ADMIN_IDS="UOPS") as core:
        fake.enqueue_delay(30)  # the model is slow: the turn is stopped while it thinks
        fake.enqueue_text("too late")
        sink = RecordingSink()
        await core.submit(ask("think hard"), sink)
        await until(lambda: Progress.THINKING in sink.progress_states)
        assert (await core.stop(KEY, "ev-1", ADMIN)).text == "Stopped."
    assert any("Stopped by ops" in n.text for n in sink.notices)
    assert not sink.answers


async def test_stop_refuses_a_forged_or_foreign_reference(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_delay(30)
        fake.enqueue_text("done")
        sink = RecordingSink()
        await core.submit(ask("think"), sink)
        await until(lambda: Progress.THINKING in sink.progress_states)
        other_thread = ThreadKey("slack", "T1", "C1", "t2")
        assert "already finished" in (await core.stop(other_thread, "ev-1", ALICE)).text
        assert "not valid" in (await core.stop(KEY, "ev-1\n" + "x" * 500, ALICE)).text
        assert core.busy == 1  # still running
        await core.stop(KEY, "ev-1", ALICE)


async def test_rerun_reviews_and_runs_the_stored_code_again_once(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url, CODEBOT_ADMIN_IDS="UOPS") as core:
        fake.enqueue_tool_call(CODE)
        fake.enqueue_text("It is 42.")
        first = RecordingSink()
        await core.submit(ask("what is 6*7"), first)
        await core.wait_idle(60)
        ref = step_ref(1, CODE)

        refused = await core.rerun(KEY, ref, BOB, RecordingSink(), "m1", "p1")
        assert not refused.ok and "Only the person who asked" in refused.text
        forged = await core.rerun(KEY, step_ref(1, "import os; os.system('id')"), ALICE, first, "m1", "p2")
        assert not forged.ok and "can't find" in forged.text
        invalid = await core.rerun(KEY, "1.zz", ALICE, first, "m1", "p3")
        assert not invalid.ok and "not valid" in invalid.text

        again = RecordingSink()
        accepted = await core.rerun(KEY, ref, ADMIN, again, "m1", "p4")  # an admin may re-run it
        assert accepted.ok, accepted.text
        twice = await core.rerun(KEY, ref, ALICE, RecordingSink(), "m1", "p5")
        assert not twice.ok and "already" in twice.text
        await core.wait_idle(60)
    kinds = [type(r) for r in again.replies]
    assert kinds == [NoticeReply, CodeReply, VerdictReply, ResultReply]
    assert again.of(ResultReply)[0].result.stdout == "42\n"
    assert again.of(CodeReply)[0].code == CODE
    assert again.of(VerdictReply)[0].verdict.allowed
    store = SQLiteStore(tmp_path / "codebot.db")
    await store.open()
    try:
        audit = await store.audit(Workspace("slack", "T1"))
        usage = await store.usage(Workspace("slack", "T1"), 0)
    finally:
        await store.close()
    assert [(a.user_id, a.code, a.outcome) for a in audit] == [("UOPS", CODE, "ok"), ("U1", CODE, "ok")]
    assert usage.runs == 2 and usage.questions == 1  # counted as a run, not as a question


async def test_rerun_is_counted_against_the_hourly_runs(tmp_path):
    env = {"CODEBOT_LIMIT_USER_RUNS_PER_HOUR": "1"}
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url, **env) as core:
        fake.enqueue_tool_call(CODE)
        fake.enqueue_text("It is 42.")
        await core.submit(ask("what is 6*7"), RecordingSink())
        await core.wait_idle(60)
        again = RecordingSink()
        assert (await core.rerun(KEY, step_ref(1, CODE), ALICE, again, "m1", "p1")).ok
        await core.wait_idle(60)
    assert not again.of(ResultReply)
    assert [n.kind for n in again.notices] == ["limit"]


async def test_a_queued_turn_can_be_stopped_and_is_recorded_stopped(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_delay(30)  # the first question holds the thread
        fake.enqueue_text("first")
        first, second = RecordingSink(), RecordingSink()
        await core.submit(ask("first question", "ev-1"), first)
        await until(lambda: Progress.THINKING in first.progress_states)
        await core.submit(ask("second question", "ev-2"), second)
        # Started and waiting for the thread (a press can only come once the turn shows its status).
        await until(lambda: ("ev-2", "started", None) in turn_rows(tmp_path / "codebot.db"))
        assert (await core.stop(KEY, "ev-2", ALICE)).text == "Stopped."
        assert any("Stopped by alice" in n.text for n in second.notices)
        assert (await core.stop(KEY, "ev-1", ALICE)).text == "Stopped."
    rows = {event: (state, reason) for event, state, reason in turn_rows(tmp_path / "codebot.db")}
    assert rows["ev-2"] == ("abandoned", "stopped")
