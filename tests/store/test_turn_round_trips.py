"""What one turn costs the store on PostgreSQL: one call per thing it needs, and none for the gate or leases.

A whole core wired as `codebot` wires it for CODEBOT_DB=postgresql://..., its store metered as in
production; the store calls a turn makes are read from its /metrics registry before and after the turn.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bot.wiring import open_core
from core.readiness import Ops
from core.service import Codebot
from core.settings import Settings
from core.types import Author, Incoming, ThreadKey
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import stack_environ
from tests.recording_sink import RecordingSink
from tests.store.backends import postgres_dsn, postgres_schema

GATE_AND_LEASES = {"gate_enter", "gate_poll", "gate_leave", "lock_thread", "release_thread"}


def store_calls(ops: Ops) -> Counter[str]:
    calls: Counter[str] = Counter()
    for family in text_string_to_metric_families(ops.metrics.render().decode()):
        for s in family.samples:
            if s.name == "codebot_store_seconds_count":
                calls[s.labels["op"]] += int(s.value)
    return calls


async def ask(core: Codebot, fake: FakeOpenAI, ops: Ops, thread: str) -> tuple[Counter[str], RecordingSink]:
    fake.enqueue_tool_call("n = 6 * 7\nprint(n)")
    fake.enqueue_text("It is 42.")
    before = store_calls(ops)
    sink = RecordingSink()
    key = ThreadKey("slack", "T1", "C1", thread)
    incoming = Incoming(key, Author("U1", "alice"), "6*7?", event_id=f"e-{thread}")
    assert (await core.submit(incoming, sink)).accepted
    await core.wait_idle(60)
    return store_calls(ops) - before, sink


async def test_an_uncontended_turn_that_runs_code_makes_one_call_per_need(tmp_path: Path) -> None:
    ops = Ops()
    async with FakeOpenAI() as fake, postgres_schema(postgres_dsn()) as dsn:
        environ = stack_environ(tmp_path, fake.base_url, CODEBOT_DB=dsn, CODEBOT_SANDBOX_POOL_SIZE="0")
        settings = Settings(_env_file=None, **environ)  # type: ignore[call-arg]
        async with open_core(settings, ops=ops) as core:
            first, first_sink = await ask(core, fake, ops, "t1")
            turn, sink = await ask(core, fake, ops, "t2")
    assert first_sink.answers == sink.answers == ["It is 42."]
    assert first - turn == Counter(limits=1)  # the workspace's limits, read once and then kept
    assert not GATE_AND_LEASES & set(turn)  # thread lock and queue ticket ride on the start and the commit
    assert turn == Counter(
        # claim, token quota, both run windows, lease, thread lock, queue ticket, and what the turn reads
        # of its thread: history, files, state (an empty workspace: the run loads nothing)
        begin_turn=1,
        save_state=1,  # the run kept `n`
        commit_turn=1,  # history, audit, usage, tokens, the lock and the ticket back
    )
