"""Slack-side faults end to end: Web API 5xx, failed uploads, and one event delivered to two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp

from bot.slack.app import SlackBot
from core.service import Codebot
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.harness import core_stack
from tests.slack.payloads import dumps, mention, sign
from tests.slack.stack import bot_settings, slack_stack

PLOT = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.plot([0, 1, 2], [0, 1, 4])\nplt.savefig('plot.png')\nresult = 'saved'\n"
)


async def test_web_api_5xx_on_a_post_is_retried_and_nothing_is_lost(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("answer despite 5xx")
        slack.fail_next("chat.postMessage", status=500, retry_after=None, error="internal_error")
        slack.fail_next("chat.postMessage", status=503, retry_after=None, error="service_unavailable")
        root = "1700000100.000100"
        assert (await s.event(mention("hello", ts=root))).status == 200
        await s.slack.wait_for(lambda: "answer despite 5xx" in s.thread("C1", root))
        await s.core.wait_idle(10)
    posts = slack.thread_posts("C1", root)
    assert posts[0].params == posts[1].params == posts[2].params  # the answer's post, retried twice
    assert [m.text for m in slack.thread_messages("C1", root)] == ["answer despite 5xx"]  # posted once


async def test_slack_down_for_a_whole_turn_does_not_break_the_bot(tmp_path, slack, caplog):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("lost answer")
        for _ in range(12):  # every post of the turn fails (502: the client does not retry those)
            slack.fail_next("chat.postMessage", status=502, retry_after=None, error="bad_gateway")
        root = "1700000101.000100"
        await s.event(mention("first", ts=root))
        await s.llm.wait_for_requests(1)
        await s.core.wait_idle(20)
        slack._failures.clear()  # Slack is back
        s.llm.enqueue_text("second answer")
        await s.event(mention("second", ts="1700000101.000200", thread_ts=root))
        await s.slack.wait_for(lambda: "second answer" in s.thread("C1", root))
    assert "slack post failed" in caplog.text  # the lost post is reported to the operator
    said = str(s.llm.agent_requests[-1]["messages"])
    assert "first" in said and "lost answer" in said  # the history kept what Slack could not show


async def test_a_failed_upload_still_posts_the_result_as_text(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        slack.fail_upload = True
        s.llm.enqueue_tool_call(PLOT)
        s.llm.enqueue_text("Here is the plot.")
        root = "1700000102.000100"
        await s.event(mention("plot x squared", ts=root))
        await s.slack.wait_for(lambda: "Here is the plot." in s.thread("C1", root), timeout_s=30)
        await s.core.wait_idle(10)
    texts = [m.text for m in slack.thread_messages("C1", root)]  # as the thread reads now
    result = next(t for t in texts if t.startswith("Result (step 1)"))
    assert "Ran OK" in result
    assert "Could not upload `plot.png`" in texts
    assert texts.index(result) < texts.index("Could not upload `plot.png`") < texts.index("Here is the plot.")
    assert slack.files == []


@asynccontextmanager
async def replica(tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI) -> AsyncIterator[tuple[Codebot, str]]:
    """One bot process's worth of stack (its own core and sandbox) on the shared database file."""
    async with core_stack(tmp_path, llm.base_url) as core:
        bot = SlackBot(core, bot_settings(slack), status_interval_s=0.05)
        server = asyncio.create_task(bot.run_http("127.0.0.1", 0))
        try:
            await slack.wait_for(lambda: bot.port or server.done(), timeout_s=5)
            yield core, f"http://127.0.0.1:{bot.port}/slack/events"
            await core.wait_idle(30)
        finally:
            await bot.stop()
            await server


async def test_one_event_delivered_four_times_to_two_replicas_runs_once(tmp_path, slack):
    root = "1700000103.000100"
    body = mention("count me once", ts=root, event_id="EvDUP4")
    raw = dumps(body)
    async with FakeOpenAI() as llm, AsyncExitStack() as stack:
        llm.latency = (0.05, 0.05)
        llm.default_text = "counted"
        (core_a, url_a), (core_b, url_b) = [
            await stack.enter_async_context(replica(tmp_path, slack, llm)) for _ in range(2)
        ]
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def deliver(url: str, retry: int) -> int:
            headers = {"Content-Type": "application/json", **sign(raw)}
            if retry:
                headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            async with http.post(url, data=raw, headers=headers) as resp:
                return resp.status

        statuses = await asyncio.gather(*(deliver(u, n) for n, u in enumerate([url_a, url_b, url_a, url_b])))
        await slack.wait_for(lambda: "counted" in [c.params["text"] for c in slack.thread_posts("C1", root)])
        await asyncio.gather(core_a.wait_idle(10), core_b.wait_idle(10))
        await deliver(url_b, 4)  # a late replay after the answer
        await asyncio.gather(core_a.wait_idle(10), core_b.wait_idle(10))
    assert statuses == [200, 200, 200, 200]
    texts = [c.params["text"] for c in slack.thread_posts("C1", root)]
    assert texts.count("counted") == 1
    assert len(llm.agent_requests) == 1
    assert len(slack.reactions("eyes")) == 1
