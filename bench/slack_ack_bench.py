"""Ack latency of Slack app_mention events over HTTP while ~100 turns are in flight.

Runs the fake Slack, the fake LLM (500 ms per answer), the real core and the SlackBot in HTTP mode on
loopback, all in this one process (so the figures include the load generator sharing the event loop).

    python bench/slack_ack_bench.py [--load 100] [--probes 400] [--latency 0.5] [--gap 0.005]

Prints the idle baseline, then the ack latency measured while the load is in flight: median, p99, max,
and the loaded/idle ratio. Slack's budget is 3 s; the target is p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.slack.app import SlackBot
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.harness import core_stack
from tests.slack.payloads import dumps, mention, sign
from tests.slack.stack import bot_settings

WORKSPACES = 10  # the core caps concurrent turns per workspace; spread the load so all of it runs


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def send(http: aiohttp.ClientSession, url: str, n: int) -> float:
    """POST one signed, unique app_mention; return the seconds until the ack was read."""
    body = mention(f"question {n}", user=f"U{n:05d}")
    body["team_id"] = f"T{n % WORKSPACES}"
    raw = dumps(body)
    headers = {"Content-Type": "application/json", **sign(raw)}
    started = time.perf_counter()
    async with http.post(url, data=raw, headers=headers) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return time.perf_counter() - started


async def probe(
    http: aiohttp.ClientSession, url: str, first: int, count: int, busy: Callable[[], int], gap_s: float = 0.0
) -> tuple[list[float], list[int]]:
    """Send `count` mentions one after another, `gap_s` apart; return ack times and turns in flight."""
    acks, in_flight = [], []
    for i in range(count):
        acks.append(await send(http, url, first + i))
        in_flight.append(busy())
        await asyncio.sleep(gap_s)
    return acks, in_flight


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<28} n={len(ms):4d}  median {statistics.median(ms):6.2f} ms  "
        f"p99 {percentile(ms, 99):6.2f} ms  max {max(ms):6.2f} ms"
    )


async def main(load: int, probes: int, latency: float, gap_s: float) -> None:
    env = {
        "CODEBOT_MAX_CONCURRENT_TURNS": str(load * 4),
        "CODEBOT_LIMIT_CONCURRENCY": "32",
        "CODEBOT_LIMIT_USER_RUNS_PER_HOUR": "1000",
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            FakeSlack() as slack,
            FakeOpenAI() as llm,
            core_stack(Path(tmp), llm.base_url, **env) as core,
        ):
            llm.latency = (latency, latency)
            bot = SlackBot(core, bot_settings(slack))
            server = asyncio.create_task(bot.run_http("127.0.0.1", 0))
            await slack.wait_for(lambda: bot.port, timeout_s=5)
            url = f"http://127.0.0.1:{bot.port}/slack/events"
            async with aiohttp.ClientSession() as http:
                idle, _ = await probe(http, url, 0, 50, lambda: core.busy)
                await core.wait_idle(30)
                burst = await asyncio.gather(*(send(http, url, 1000 + i) for i in range(load)))
                await slack.wait_for(lambda: core.busy >= load, timeout_s=30)  # all of them scheduled
                started = time.perf_counter()
                loaded, in_flight = await probe(http, url, 5000, probes, lambda: core.busy, gap_s)
                window = time.perf_counter() - started
                await core.wait_idle(120)
            answers = len(slack.calls_to("chat.postMessage"))
            await bot.stop()
            await server
    print(
        f"turns in flight while probing: min {min(in_flight)}, max {max(in_flight)} "
        f"(fake LLM {latency * 1000:.0f} ms per answer; probing took {window:.2f} s)"
    )
    print(summary("idle", idle))
    print(summary(f"burst of {load} concurrent", burst))
    print(summary(f"under load ({probes} probes)", loaded))
    ratio = percentile(loaded, 99) / percentile(idle, 99)
    print(
        f"loaded/idle p99 ratio: {ratio:.2f}   target p99 < 50 ms: "
        f"{'met' if percentile(loaded, 99) < 0.05 else 'NOT met'}   chat.postMessage calls: {answers}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=100)
    parser.add_argument("--probes", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument(
        "--gap", type=float, default=0.005, help="seconds between probes (keeps ~100 in flight)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.load, args.probes, args.latency, args.gap))
