"""/metrics counts what real turns did: outcomes, steps, refusals, sandbox time and kills, LLM errors."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core.types import AnswerReply, Progress, Reply
from tests.ops.conftest import OpsStack, incoming, sample_value
from tests.recording_sink import RecordingSink


async def ask(stack: OpsStack, text: str, event: str, thread: str = "1700.1") -> RecordingSink:
    sink = RecordingSink()
    assert (await stack.core.submit(incoming(text, thread=thread, event=event), sink)).accepted
    await stack.core.wait_idle(60)
    return sink


async def test_a_turn_that_runs_code_is_counted_once_with_its_sandbox_time(stack: OpsStack):
    before = await stack.sample("codebot_turns_total", platform="slack", outcome="ok")
    stack.llm.enqueue_tool_call("result = sum(range(10**5))")
    stack.llm.enqueue_text("It is 4999950000.")
    sink = await ask(stack, "sum of the first 100000 integers?", "Ev-sum")
    assert sink.answers == ["It is 4999950000."]

    _, text = await stack.get("/metrics")
    value = lambda name, **labels: sample_value(text, name, labels)  # noqa: E731
    assert value("codebot_turns_total", platform="slack", outcome="ok") == before + 1
    assert value("codebot_turn_seconds_count") == 1
    assert value("codebot_steps_total") == 1
    assert value("codebot_sandbox_runs_total", outcome="ok") == 1
    assert value("codebot_sandbox_seconds_count") == 1
    assert value("codebot_sandbox_seconds_sum") > 0
    assert value("codebot_llm_request_seconds_count", result="ok") == 3  # two agent calls, one review
    assert value("codebot_store_seconds_count", op="commit_turn") == 1
    assert value("codebot_turns_waiting") == 0 and value("codebot_turns_running") == 0


async def test_refusals_kills_and_llm_errors_are_counted_by_kind(stack: OpsStack):
    stack.llm.enqueue_tool_call("import shutil; shutil.rmtree('/tmp')")
    stack.llm.enqueue_verdict(False, "high", ["deletes files"])
    stack.llm.enqueue_tool_call("print('x' * 10**8)")  # floods the output cap: killed for output
    stack.llm.enqueue_error(503)  # one failed attempt; the retry gets the answer
    stack.llm.enqueue_text("Done.")
    sink = await ask(stack, "try things", "Ev-kinds")
    assert sink.answers == ["Done."]

    _, text = await stack.get("/metrics")
    value = lambda name, **labels: sample_value(text, name, labels)  # noqa: E731
    assert value("codebot_refusals_total", risk="high") == 1
    assert value("codebot_steps_total") == 2
    assert value("codebot_sandbox_kills_total", reason="output") == 1
    assert value("codebot_sandbox_runs_total", outcome="killed") == 1
    assert value("codebot_llm_errors_total", kind="server") == 1
    assert value("codebot_llm_request_seconds_count", result="error") == 1
    assert value("codebot_turns_total", platform="slack", outcome="ok") == 1


async def test_a_failed_turn_counts_as_error_and_no_label_carries_an_id(stack: OpsStack):
    stack.llm.enqueue_error(401)  # a rejected key is not retried: the turn fails at once
    sink = await ask(stack, "anything", "Ev-fail", thread="1700.999")
    assert not sink.of(AnswerReply) and [n.kind for n in sink.notices] == ["error"]

    _, text = await stack.get("/metrics")
    assert sample_value(text, "codebot_turns_total", {"outcome": "error"}) == 1
    assert sample_value(text, "codebot_llm_errors_total", {"kind": "auth"}) == 1
    values = {v for f in text_string_to_metric_families(text) for s in f.samples for v in s.labels.values()}
    assert not values & {"T9", "C9", "1700.999", "U77", "Ev-fail"}


class FailingAnswerSink(RecordingSink):
    """An adapter sink whose platform refuses the final answer (progress updates still work)."""

    async def post(self, reply: Reply) -> None:
        if isinstance(reply, AnswerReply):
            raise ConnectionError("platform refused the post")
        await super().post(reply)


async def test_an_answer_the_platform_refuses_counts_as_undelivered_and_a_platform_error(stack: OpsStack):
    stack.llm.enqueue_text("You will never see this.")
    sink = FailingAnswerSink()
    assert (await stack.core.submit(incoming("hi", event="Ev-lost"), sink)).accepted
    await stack.core.wait_idle(30)
    _, text = await stack.get("/metrics")
    assert sample_value(text, "codebot_turns_total", {"outcome": "undelivered"}) == 1
    assert sample_value(text, "codebot_turns_total", {"outcome": "ok"}) == 0
    assert sample_value(text, "codebot_platform_api_errors_total", {"platform": "slack"}) == 1


class FailingStatusSink(RecordingSink):
    """An adapter sink whose platform refuses the final status update, after the answer got through."""

    async def progress(self, state: Progress, detail: str = "") -> None:
        if state is Progress.DONE:
            raise ConnectionError("platform refused the update")
        await super().progress(state, detail)


async def test_a_delivered_answer_counts_as_ok_even_if_a_later_status_update_fails(stack: OpsStack):
    stack.llm.enqueue_text("Delivered.")
    sink = FailingStatusSink()
    assert (await stack.core.submit(incoming("hi", event="Ev-status"), sink)).accepted
    await stack.core.wait_idle(30)
    assert sink.answers == ["Delivered."]
    _, text = await stack.get("/metrics")
    assert sample_value(text, "codebot_turns_total", {"outcome": "ok"}) == 1
    assert sample_value(text, "codebot_platform_api_errors_total", {"platform": "slack"}) == 1
