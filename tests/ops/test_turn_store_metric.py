"""/metrics gives each turn's store time as one observation (issue 15: store overhead per turn, p50)."""

from __future__ import annotations

from tests.ops.conftest import OpsStack, incoming, sample_value
from tests.recording_sink import RecordingSink


async def test_each_turn_records_its_store_time_once_its_claim_included(stack: OpsStack):
    for n in (1, 2):
        stack.llm.enqueue_text(f"answer {n}")
        sink = RecordingSink()
        assert (await stack.core.submit(incoming(f"q{n}", event=f"Ev-cost-{n}"), sink)).accepted
        await stack.core.wait_idle(60)
        assert sink.answers == [f"answer {n}"]
    _, text = await stack.get("/metrics")
    value = lambda name, **labels: sample_value(text, name, labels)  # noqa: E731
    assert value("codebot_turn_store_seconds_count") == 2
    per_turn_ops = ("begin_turn", "thread_context", "commit_turn")  # begin_turn: claim, admission, start
    for op in per_turn_ops:
        assert value("codebot_store_seconds_count", op=op) == 2, op
    assert value("codebot_store_seconds_count", op="limits") == 1  # read for the first turn, then kept
    in_turns = sum(value("codebot_store_seconds_sum", op=op) for op in (*per_turn_ops, "limits"))
    # The turns' tally holds every call a turn makes, its event's claim included.
    assert value("codebot_turn_store_seconds_sum") >= in_turns - 1e-9 > 0

    assert not (await stack.core.submit(incoming("q1", event="Ev-cost-1"), RecordingSink())).accepted
    assert await stack.sample("codebot_turn_store_seconds_count") == 2  # a duplicate delivery is no turn
