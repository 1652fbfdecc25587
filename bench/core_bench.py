"""Core benchmarks (issue 2): per-turn overhead of the core, and 200 concurrent threads.

1. A question that takes one tool step, with the fake LLM answering instantly and the sandbox stubbed to
   return at once, against the same HTTP round trips to the fake made directly with the openai SDK.
   Target: the core adds under 5 ms per turn at the median.
2. 200 concurrent threads with 200 ms of LLM latency per call: all complete in under 2x the single-turn
   time, and the event loop is never blocked for more than 20 ms.

Run: python bench/core_bench.py   (prints figures; not a test)
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.wiring import open_core
from core.settings import Settings
from core.types import Author, Incoming, ThreadKey
from sandbox.types import RunLimits, RunResult
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import stack_environ
from tests.recording_sink import RecordingSink

TURNS = 200


class InstantRunner:
    """Stands in for the sandbox so only the core is measured."""

    async def run(self, code: str, limits: RunLimits | None = None) -> RunResult:
        return RunResult(stdout="", result="1", duration_ms=0.0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_round_trips(fake: FakeOpenAI, n: int) -> list[float]:
    """Time the three requests of one turn made directly with the SDK (no core)."""
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-bench", max_retries=0)
    tool = {"type": "function", "function": {"name": "execute_code", "parameters": {"type": "object"}}}
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        msgs = [{"role": "user", "content": "q"}]
        await client.chat.completions.create(model="m", messages=msgs, tools=[tool])
        await client.chat.completions.create(
            model="m",
            messages=msgs,
            response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": {}}},
        )
        await client.chat.completions.create(model="m", messages=msgs, tools=[tool])
        times.append((time.perf_counter() - t0) * 1000)
    await client.close()
    return times


_EVENTS = itertools.count()


def ask(i: int, workspace: str = "T1") -> Incoming:
    key = ThreadKey("slack", workspace, "C1", f"thread-{i}")
    return Incoming(key, Author(f"U{i}", "bench"), "compute something", event_id=f"ev-{next(_EVENTS)}")


async def core_turns(core, fake: FakeOpenAI, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for i in range(n):
        fake.enqueue_tool_call("result = 1")
        fake.enqueue_text("one")
        t0 = time.perf_counter()
        await core.submit(ask(i, workspace=f"W{i}"), RecordingSink())
        await core.wait_idle(30)
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def loop_lag(stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.005)
        samples.append((time.perf_counter() - t0 - 0.005) * 1000)


def settings_for(tmp: Path, fake: FakeOpenAI) -> tuple[Settings, dict[str, str]]:
    environ = stack_environ(
        tmp,
        fake.base_url,
        CODEBOT_MAX_CONCURRENT_TURNS="256",
        CODEBOT_LIMIT_USER_RUNS_PER_HOUR="1000",
        CODEBOT_LIMIT_WORKSPACE_RUNS_PER_DAY="100000",
        CODEBOT_LOG_LEVEL="WARNING",
    )
    return Settings(_env_file=None, **environ), environ  # type: ignore[call-arg]


async def overhead(tmp: Path) -> None:
    async with FakeOpenAI() as fake:
        settings, environ = settings_for(tmp / "a", fake)
        (tmp / "a").mkdir()
        async with open_core(settings, environ, runner=InstantRunner()) as core:
            await core_turns(core, fake, 20)  # warm-up
            raw_times, core_times = [], []
            for _ in range(5):  # interleave so machine noise hits both alike
                raw_times += await raw_round_trips(fake, TURNS // 5)
                core_times += await core_turns(core, fake, TURNS // 5)
    raw_med, core_med = statistics.median(raw_times), statistics.median(core_times)
    added = core_med - raw_med
    print(f"1. per-turn overhead over {TURNS} turns (3 LLM calls + stubbed run + SQLite commit)")
    print(f"   raw HTTP round trips: median {raw_med:.2f} ms, p90 {pct(raw_times, 0.9):.2f} ms")
    print(f"   full core turn:       median {core_med:.2f} ms, p90 {pct(core_times, 0.9):.2f} ms")
    print(
        f"   core adds {added:.2f} ms per turn (ratio {core_med / raw_med:.2f}x): "
        f"{'PASS' if added < 5 else 'MISS'} (target < 5 ms)"
    )


async def concurrent(tmp: Path) -> None:
    async with FakeOpenAI() as fake:
        fake.latency = (0.2, 0.2)
        settings, environ = settings_for(tmp / "b", fake)
        (tmp / "b").mkdir()
        async with open_core(settings, environ, runner=InstantRunner()) as core:
            single = (await core_turns(core, fake, 3))[-1]
            for _ in range(200):
                fake.enqueue_tool_call("result = 1")
            for _ in range(200):
                fake.enqueue_text("one")
            stop, lags = asyncio.Event(), []
            monitor = asyncio.create_task(loop_lag(stop, lags))
            t0 = time.perf_counter()
            sinks = [RecordingSink() for _ in range(200)]
            for i, sink in enumerate(sinks):
                await core.submit(ask(1000 + i, workspace=f"C{i}"), sink)
            await core.wait_idle(120)
            total = (time.perf_counter() - t0) * 1000
            stop.set()
            await monitor
    answered = sum(1 for s in sinks if s.answers)
    print("2. 200 concurrent threads, fake LLM 200 ms per call")
    print(
        f"   single turn {single:.0f} ms; 200 turns all done in {total:.0f} ms "
        f"({total / single:.2f}x single): {'PASS' if total < 2 * single else 'MISS'} (target < 2x)"
    )
    print(f"   answered {answered}/200")
    print(
        f"   event-loop lag: max {max(lags):.1f} ms, p99 {pct(lags, 0.99):.1f} ms: "
        f"{'PASS' if max(lags) < 20 else 'MISS'} (target max < 20 ms)"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        await overhead(Path(d))
        await concurrent(Path(d))


if __name__ == "__main__":
    asyncio.run(main())
