"""The Stop button across replicas: pressed on replica B, it stops the turn replica A runs.

Two whole cores on one PostgreSQL database, wired as `codebot` wires them; the turn waits on a slow
model answer, so only a Stop can end it in time.
"""

from __future__ import annotations

from pathlib import Path

from core.types import Author, Incoming, Progress, ThreadKey
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import until
from tests.recording_sink import RecordingSink
from tests.store.test_replicas_core import two_replicas

ALICE = Author("U1", "alice")
BOB = Author("U2", "bob")
KEY = ThreadKey("slack", "T1", "C1", "t1")


async def test_stop_pressed_on_another_replica_stops_the_turn(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake, two_replicas(tmp_path, fake.base_url) as (a, b):
        fake.enqueue_delay(60)  # the model "thinks" for a minute
        fake.enqueue_text("too late")
        sink = RecordingSink()
        assert (await a.submit(Incoming(KEY, ALICE, "think hard", event_id="e1"), sink)).accepted
        await until(lambda: Progress.THINKING in sink.progress_states)

        elsewhere = ThreadKey("slack", "T1", "C1", "t2")
        assert "already finished" in (await b.stop(elsewhere, "e1", ALICE)).text  # not in that thread
        refused = await b.stop(KEY, "e1", BOB)
        assert not refused.ok and "Only the person who asked" in refused.text
        assert a.busy == 1  # Bob's press changed nothing

        pressed = await b.stop(KEY, "e1", ALICE)
        assert pressed.ok and "Stopping" in pressed.text
        await a.wait_idle(30)  # well before the model would have answered
    assert sink.answers == []
    assert "Stopped by alice" in sink.notices[-1].text
    assert Progress.FAILED in sink.progress_states
