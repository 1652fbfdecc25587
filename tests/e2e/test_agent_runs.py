"""The agent and the core with the real sandbox: what only a real run shows (kills, files, real output).

The core's logic is tested with a scripted runner in tests/core; these keep a real run end to end.
"""

from __future__ import annotations

import time

from core.agent import Agent, TurnLimits
from core.llm import LLMClient
from core.review.reviewer import Reviewer
from core.types import AnswerReply, CodeReply, ResultReply, VerdictReply
from sandbox import Sandbox
from sandbox.types import RunLimits
from tests.core.conftest import tool_messages
from tests.core.test_agent import ask
from tests.core.test_service import ask as question
from tests.core.test_service import transcript
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.recording_sink import RecordingSink


async def test_run_timeout_is_capped_by_the_turn_deadline(
    fake: FakeOpenAI, client: LLMClient, sandbox: Sandbox
):
    fake.enqueue_tool_call("while True:\n    pass")
    limits = TurnLimits(run_limits=RunLimits(timeout_s=60, cpu_s=60), safety_mode="off")
    start = time.monotonic()
    outcome, sink = await ask(Agent(client, Reviewer(client), sandbox), "spin", limits=limits, deadline_s=2.5)

    assert time.monotonic() - start < 5
    result = sink.of(ResultReply)[0].result
    assert result.timed_out or result.killed_reason == "timeout"
    assert outcome.error is not None and "too long" in outcome.error  # no time left for the model


async def test_the_model_hears_about_files_and_limits_hit(
    fake: FakeOpenAI, client: LLMClient, sandbox: Sandbox
):
    fake.enqueue_tool_call("open('table.csv', 'w').write('a,b\\n1,2\\n')\nprint('saved')")
    fake.enqueue_tool_call("while True:\n    pass")
    fake.enqueue_text("done")
    limits = TurnLimits(run_limits=RunLimits(timeout_s=0.5, cpu_s=5))
    outcome, sink = await ask(Agent(client, Reviewer(client), sandbox), "q", limits=limits)

    saved, spun = tool_messages(fake.agent_requests[2])
    assert "table.csv (8 bytes)" in saved and "saved" in saved
    assert "killed: the run hit its timeout limit" in spun and "failed" in spun
    assert [f.name for f in sink.of(ResultReply)[0].files] == ["table.csv"]
    assert outcome.answer == "done"


async def test_question_runs_code_and_posts_every_step_in_order(tmp_path):
    async with FakeOpenAI() as fake, core_stack(tmp_path, fake.base_url) as core:
        fake.enqueue_tool_call("import math\nresult = math.sqrt(2)")
        fake.enqueue_text("The square root of 2 is about 1.41421.")
        sink = RecordingSink()
        submitted = await core.submit(question("what is the sqrt of 2"), sink)
        assert submitted.accepted
        await core.wait_idle(30)
    kinds = [type(r) for r in sink.replies]
    assert kinds == [CodeReply, VerdictReply, ResultReply, AnswerReply]
    result = sink.of(ResultReply)[0].result
    assert result.result == "1.4142135623730951"
    assert sink.answers == ["The square root of 2 is about 1.41421."]
    # the model saw the sandbox's output when writing its answer
    assert "1.4142135623730951" in transcript(fake)
