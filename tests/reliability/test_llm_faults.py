"""LLM faults through the whole core (store, sandbox, openai SDK over HTTP to the fake LLM).

Each fault ends the turn in an answer or one short error notice, and the next question in the same
thread still works: the stored history gives the model a consistent request (no dangling tool call).
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from core.llm import LLMClient
from core.types import Author, Incoming, NoticeReply, Progress, ThreadKey, VerdictReply
from tests.core.conftest import chat_is_consistent, make_settings
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.recording_sink import RecordingSink

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000001")


def ask(text: str, event: str, key: ThreadKey = KEY) -> Incoming:
    return Incoming(key, Author("U1", "alice"), text, event_id=event)


@dataclass(frozen=True)
class Fault:
    name: str
    script: Callable[[FakeOpenAI], object]
    answer: str | None = None  # the answer the user gets despite the fault
    notice: str = ""  # or: a piece of the one error notice they get instead
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[RecordingSink, FakeOpenAI], None] | None = None


def _then(*steps: Callable[[FakeOpenAI], object]) -> Callable[[FakeOpenAI], None]:
    def script(fake: FakeOpenAI) -> None:
        for step in steps:
            step(fake)

    return script


def _tool_output_says(text: str) -> Callable[[RecordingSink, FakeOpenAI], None]:
    def check(_sink: RecordingSink, fake: FakeOpenAI) -> None:
        outputs = [m["content"] for m in fake.agent_requests[1]["messages"] if m["role"] == "tool"]
        assert any(text in o for o in outputs), outputs

    return check


def _review_skipped(sink: RecordingSink, _fake: FakeOpenAI) -> None:
    [verdict] = sink.of(VerdictReply)
    assert verdict.verdict.allowed and "skipped" in verdict.verdict.reasons[0]


FAULTS = [
    Fault(
        "429-retry-after-then-ok",
        _then(lambda f: f.enqueue_error(429, retry_after=0.2), lambda f: f.enqueue_text("ok after 429")),
        answer="ok after 429",
    ),
    Fault(
        "500-502-503-then-ok",
        _then(*(lambda f, s=s: f.enqueue_error(s) for s in (500, 502, 503)), lambda f: f.enqueue_text("ok")),
        answer="ok",
        env={"CODEBOT_LLM_RETRIES": "3"},
    ),
    Fault(
        "503-until-retries-run-out",
        _then(lambda f: f.enqueue_error(503), lambda f: f.enqueue_error(503)),
        notice="having trouble",
    ),
    Fault(
        "429-asking-for-too-long",
        lambda f: f.enqueue_error(429, retry_after=600),
        notice="rate-limiting",
    ),
    Fault("400-not-retried", lambda f: f.enqueue_error(400), notice="rejected the request"),
    Fault(
        "timeout-then-ok",
        _then(lambda f: f.enqueue_delay(3), lambda f: f.enqueue_text("late"), lambda f: f.enqueue_text("ok")),
        answer="ok",
        env={"CODEBOT_LLM_TIMEOUT_S": "0.5"},
    ),
    Fault(
        "timeout-every-time",
        _then(*(lambda f: (f.enqueue_delay(3), f.enqueue_text("late")) for _ in range(2))),
        notice="did not answer in time",
        env={"CODEBOT_LLM_TIMEOUT_S": "0.5"},
    ),
    Fault(
        "garbage-body-then-ok",
        _then(lambda f: f.enqueue_garbage(), lambda f: f.enqueue_text("ok")),
        answer="ok",
    ),
    Fault(
        "garbage-body-every-time",
        _then(lambda f: f.enqueue_garbage(), lambda f: f.enqueue_garbage()),
        notice="could not read",
    ),
    Fault(
        "bad-json-tool-arguments",
        _then(
            lambda f: f.enqueue_raw_tool_call("execute_code", '{"code": "print(1)'),
            lambda f: f.enqueue_text("recovered"),
        ),
        answer="recovered",
        check=_tool_output_says("not valid JSON"),
    ),
    Fault(
        "unknown-tool",
        _then(lambda f: f.enqueue_raw_tool_call("shell", '{"cmd": "ls"}'), lambda f: f.enqueue_text("ok")),
        answer="ok",
        check=_tool_output_says("no tool named 'shell'"),
    ),
    Fault("empty-answer-no-code", lambda f: f.enqueue_text(""), answer="I have no answer to that."),
    Fault(
        "empty-answer-after-code",
        _then(lambda f: f.enqueue_tool_call("result = 6 * 7"), lambda f: f.enqueue_text("")),
        answer="The code finished; `result` is 42.",
    ),
    Fault(
        "verdict-failing-validation",
        _then(
            lambda f: f.enqueue_tool_call("result = 2 + 2"),
            lambda f: f.enqueue_verdict_raw('{"allowed": "perhaps", "risk": "extreme"}'),
            lambda f: f.enqueue_verdict_raw("I think it is fine"),
            # strict mode failed twice: JSON object mode gets its chance, and fails twice too
            lambda f: f.enqueue_verdict_raw("still fine, I think"),
            lambda f: f.enqueue_verdict_raw("{}"),
            lambda f: f.enqueue_text("four"),
        ),
        answer="four",
        check=_review_skipped,
    ),
    Fault(
        "review-server-down",
        _then(
            lambda f: f.enqueue_tool_call("result = 2 + 2"),
            lambda f: f.enqueue_error(500, review=True),
            lambda f: f.enqueue_error(500, review=True),
            lambda f: f.enqueue_text("four"),
        ),
        answer="four",
        check=_review_skipped,
    ),
    Fault(
        "503-after-a-tool-call",
        _then(
            lambda f: f.enqueue_tool_call("result = 3"),
            lambda f: f.enqueue_error(503),
            lambda f: f.enqueue_error(503),
        ),
        notice="having trouble",
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
async def test_a_fault_ends_in_an_answer_or_a_notice_and_the_thread_goes_on(tmp_path, fault: Fault):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url, **fault.env) as core:
        fault.script(fake)
        first = RecordingSink()
        assert (await core.submit(ask("first question", "e1"), first)).accepted
        await core.wait_idle(30)
        fake.enqueue_text("second answer")
        second = RecordingSink()
        await core.submit(ask("second question", "e2"), second)
        await core.wait_idle(30)

    if fault.answer is not None:
        assert first.answers == [fault.answer] and first.notices == []
        assert first.progress_states[-1] == Progress.DONE
    else:
        assert first.answers == []
        [notice] = first.notices
        assert notice.kind == "error" and fault.notice in notice.text and len(notice.text) < 120
        assert first.progress_states[-1] == Progress.FAILED
    if fault.check is not None:
        fault.check(first, fake)
    assert second.answers == ["second answer"] and second.notices == []
    follow_up = fake.agent_requests[-1]["messages"]
    assert chat_is_consistent(follow_up)
    assert "first question" in json.dumps(follow_up) and "second question" in json.dumps(follow_up)
    assert fake.pending == 0  # every scripted answer was asked for: retries happened as expected


async def test_connection_refused_then_the_next_process_continues_the_thread(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago and now has no listener
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    refused = RecordingSink()
    async with core_stack(tmp_path, dead) as core:
        await core.submit(ask("first question", "e1"), refused)
        await core.wait_idle(30)
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_text("back online")
        later = RecordingSink()
        await core.submit(ask("second question", "e2"), later)
        await core.wait_idle(30)
    assert [n.text for n in refused.notices] == ["The language model could not be reached."]
    assert later.answers == ["back online"]
    follow_up = fake.agent_requests[-1]["messages"]
    assert chat_is_consistent(follow_up) and "first question" in json.dumps(follow_up)


async def test_the_turn_deadline_ends_a_slow_turn_with_a_clear_message(tmp_path):
    async with (
        FakeOpenAI() as fake,
        core_stack(tmp_path, fake.base_url, CODEBOT_TURN_DEADLINE_S="2") as core,
    ):
        fake.enqueue_tool_call("result = 1")
        fake.enqueue_delay(30)  # the model stalls after seeing the result
        fake.enqueue_text("never seen")
        slow = RecordingSink()
        started = time.monotonic()
        await core.submit(ask("slow question", "e1"), slow)
        await core.wait_idle(30)
        elapsed = time.monotonic() - started
        fake.enqueue_text("quick answer")
        quick = RecordingSink()
        await core.submit(ask("quick question", "e2"), quick)
        await core.wait_idle(30)
    assert 1.5 < elapsed < 4, elapsed
    assert slow.notices == [
        NoticeReply("error", "This question took too long to answer; try again or ask something simpler.")
    ]
    kinds = [type(r).__name__ for r in slow.replies]
    assert kinds == ["CodeReply", "VerdictReply", "ResultReply", "NoticeReply"]  # the work done is shown
    assert quick.answers == ["quick answer"]
    assert chat_is_consistent(fake.agent_requests[-1]["messages"])


async def test_retries_never_run_past_the_turn_deadline(tmp_path):
    env = {"CODEBOT_TURN_DEADLINE_S": "1.5", "CODEBOT_LLM_RETRIES": "10"}
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url, **env) as core:
        for _ in range(30):
            fake.enqueue_error(503)
        sink = RecordingSink()
        started = time.monotonic()
        await core.submit(ask("q", "e1"), sink)
        await core.wait_idle(30)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert [n.kind for n in sink.notices] == ["error"]
    assert len(fake.requests) < 10  # jittered backoff, not a tight loop


async def test_retry_backoff_is_jittered_within_its_bounds():
    """Clients with different random streams wait different times (no retry storms in lockstep)."""
    waits = []
    async with FakeOpenAI() as fake:
        for seed in (1, 2):
            client = LLMClient(make_settings(fake.base_url), backoff_s=0.4, rng=random.Random(seed))
            model = client.model("agent")
            await client.call(lambda m=model: m.call_async("warm up"), deadline=time.monotonic() + 10)
            fake.enqueue_error(503)
            fake.enqueue_text("ok")
            started = time.monotonic()
            await client.call(lambda m=model: m.call_async("hi"), deadline=time.monotonic() + 10)
            waits.append(time.monotonic() - started)
            await client.aclose()
    assert all(0.2 <= w < 0.6 for w in waits), waits  # "equal jitter": between half and all of 0.4 s
    assert abs(waits[0] - waits[1]) > 0.08, waits  # seeds 1 and 2 draw 0.23 s and 0.39 s
