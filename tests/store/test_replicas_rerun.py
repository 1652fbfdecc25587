"""The Re-run button across replicas: a re-run holds its thread's lock in the database, as a turn does.

Two whole cores on one PostgreSQL database, wired as `codebot` wires them: while a re-run pressed on
replica A runs, a follow-up in the same thread on replica B waits, and starts only once the re-run ended.
"""

from __future__ import annotations

from pathlib import Path

from core.control import step_ref
from core.types import Author, Incoming, Progress, Reply, ResultReply, ThreadKey
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import until
from tests.recording_sink import RecordingSink
from tests.store.test_replicas_core import two_replicas

ALICE = Author("U1", "alice")
KEY = ThreadKey("slack", "T1", "C1", "t1")
CODE = "import time\ntime.sleep(2)\nprint(42)"  # long enough for the follow-up to arrive meanwhile


class LoggedSink(RecordingSink):
    """Records into one log shared by every sink of the test, so their order can be compared."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self._name, self._log = name, log

    async def progress(self, state: Progress, detail: str = "") -> None:
        self._log.append((self._name, state.name))
        await super().progress(state, detail)

    async def post(self, reply: Reply) -> None:
        self._log.append((self._name, type(reply).__name__))
        await super().post(reply)


async def test_a_follow_up_on_another_replica_waits_for_a_running_rerun(tmp_path: Path) -> None:
    log: list[tuple[str, str]] = []
    async with FakeOpenAI() as fake, two_replicas(tmp_path, fake.base_url) as (a, b):
        fake.enqueue_tool_call(CODE)
        fake.enqueue_text("It is 42.")
        await a.submit(Incoming(KEY, ALICE, "what is 6*7, slowly", event_id="e1"), RecordingSink())
        await a.wait_idle(60)

        rerun = LoggedSink("rerun", log)
        pressed = await a.rerun(KEY, step_ref(1, CODE), ALICE, rerun, "m1", "p1")
        assert pressed.ok, pressed.text
        await until(lambda: Progress.RUNNING in rerun.progress_states)  # its code is sleeping now
        fake.enqueue_text("Still 42.")
        follow_up = LoggedSink("follow-up", log)
        assert (await b.submit(Incoming(KEY, ALICE, "and now?", event_id="e2"), follow_up)).accepted
        await a.wait_idle(60)
        await b.wait_idle(60)
    assert rerun.of(ResultReply)[0].result.stdout == "42\n"
    assert follow_up.answers == ["Still 42."]
    result_at = log.index(("rerun", "ResultReply"))
    started_at = min(i for i, (who, _) in enumerate(log) if who == "follow-up")
    assert result_at < started_at, log  # the follow-up did nothing while the re-run held the thread
