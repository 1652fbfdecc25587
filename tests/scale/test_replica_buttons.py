"""The Stop button across real `codebot slack --http` replicas on one PostgreSQL database.

The load balancer may send a button press to any replica: a Stop pressed through replica B stops the
code replica A is running, and the thread is told who stopped it.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from bot.slack.actions import STOP
from tests.fakes.slack_fake import FakeSlack
from tests.scale.holding_llm import HoldingOpenAI
from tests.scale.leased_replicas import WAIT_S, replicas, texts
from tests.slack.payloads import mention, sign

LONG_RUN = "import time\nprint('go', flush=True)\ntime.sleep(55)\nprint('late')"


def running_step(slack: FakeSlack, root: str) -> str | None:
    """ts of the step message that offers Stop while its code runs."""
    for m in slack.thread_messages("C1", root):
        stop = any(b["action_id"] == STOP for b in slack.interactive.buttons(m.ts))
        if stop and "Running the code" in m.text + json.dumps(m.blocks):
            return m.ts
    return None


async def test_stop_pressed_through_the_other_replica_stops_the_run(
    tmp_path: Path, slack: FakeSlack, llm: HoldingOpenAI, pg: str, http: aiohttp.ClientSession
) -> None:
    root = "1700000500.000100"
    async with replicas(2, tmp_path, slack, llm, pg) as (a, b):
        llm.enqueue_tool_call(LONG_RUN)
        llm.enqueue_text("never")
        assert await a.send(http, mention("wait a minute", ts=root)) == 200
        step = await slack.wait_for(lambda: running_step(slack, root), timeout_s=WAIT_S)
        before = len(slack.responses)
        raw = slack.interactive.form(slack.interactive.press(step, STOP, "U123"))
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
        async with http.post(b.events_url, data=raw, headers=headers) as resp:
            assert resp.status == 200
        [reply] = await slack.wait_for(lambda: slack.responses[before:], timeout_s=WAIT_S)
        assert "Stopping" in reply["text"]
        await slack.wait_for(lambda: any("Stopped by" in t for t in texts(slack, root)), timeout_s=WAIT_S)
    assert "never" not in texts(slack, root)
    assert not any("late" in t for t in texts(slack, root))
