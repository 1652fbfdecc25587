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
import gc
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.wiring import open_core
from core.lean_client import LeanAsyncOpenAI
from core.llm import async_http
from core.settings import Settings
from core.types import Author, Incoming, ThreadKey
from sandbox.types import RunLimits, RunResult
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import stack_environ
from tests.recording_sink import RecordingSink

TURNS = 200


class InstantRunner:
    """Stands in for the sandbox so only the core is measured."""

    async def run(self, code: str, limits: RunLimits | None = None, *, workspace: object = None) -> RunResult:
        return RunResult(stdout="", result="1", duration_ms=0.0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_round_trips(fake: FakeOpenAI, bodies: list[bytes], n: int) -> list[float]:
    """Time plain HTTP POSTs of the exact request bodies one core turn sent (no SDK, no core)."""
    times = []
    url = fake.base_url + "/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            fake.enqueue_tool_call("result = 1")
            fake.enqueue_text("one")
            t0 = time.perf_counter()
            for body in bodies:
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
            times.append((time.perf_counter() - t0) * 1000)
    return times


async def sdk_round_trips(
    fake: FakeOpenAI, bodies: list[bytes], n: int, client_class: type[AsyncOpenAI] = AsyncOpenAI
) -> list[float]:
    """The same requests through the openai SDK (bare, or the core's lean client) with no core around it."""
    client = client_class(base_url=fake.base_url, api_key="sk-bench", max_retries=0)
    requests = [json.loads(b) for b in bodies]
    times = []
    for _ in range(n):
        fake.enqueue_tool_call("result = 1")
        fake.enqueue_text("one")
        t0 = time.perf_counter()
        for req in requests:
            await client.chat.completions.create(**req)
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


def settings_for(tmp: Path, fake: FakeOpenAI | str) -> Settings:
    environ = stack_environ(
        tmp,
        fake if isinstance(fake, str) else fake.base_url,
        CODEBOT_MAX_CONCURRENT_TURNS="256",
        CODEBOT_LIMIT_USER_RUNS_PER_HOUR="1000",
        CODEBOT_LIMIT_WORKSPACE_RUNS_PER_DAY="100000",
        CODEBOT_LOG_LEVEL="WARNING",
    )
    return Settings(_env_file=None, **environ)  # type: ignore[call-arg]


async def overhead(tmp: Path) -> None:
    async with FakeOpenAI() as fake:
        settings = settings_for(tmp / "a", fake)
        (tmp / "a").mkdir()
        async with open_core(settings, runner=InstantRunner()) as core:
            await core_turns(core, fake, 20)  # warm-up (the review verdict is cached from here on)
            before = len(fake.raw_bodies)
            await core_turns(core, fake, 1)
            bodies = fake.raw_bodies[before:]
            raw_times, sdk_times, lean_times, core_times = [], [], [], []
            for _ in range(5):  # interleave so machine noise hits all alike
                raw_times += await raw_round_trips(fake, bodies, TURNS // 5)
                sdk_times += await sdk_round_trips(fake, bodies, TURNS // 5)
                lean_times += await sdk_round_trips(fake, bodies, TURNS // 5, LeanAsyncOpenAI)
                core_times += await core_turns(core, fake, TURNS // 5)
    raw_med, core_med = statistics.median(raw_times), statistics.median(core_times)
    sdk_med, lean_med = statistics.median(sdk_times), statistics.median(lean_times)
    added = core_med - raw_med
    print(f"1. per-turn overhead, {TURNS} turns of one tool step ({len(bodies)} LLM requests, stubbed run)")
    print(f"   raw HTTP round trips:    median {raw_med:.2f} ms, p90 {pct(raw_times, 0.9):.2f} ms")
    print(f"   same via openai SDK create(): median {sdk_med:.2f} ms, p90 {pct(sdk_times, 0.9):.2f} ms")
    print(
        f"   same via the lean client (extra_body): median {lean_med:.2f} ms "
        f"({lean_med / sdk_med:.2f}x SDK create(); {sdk_med - lean_med:+.2f} ms saved per turn)"
    )
    print(f"   full core turn:          median {core_med:.2f} ms, p90 {pct(core_times, 0.9):.2f} ms")
    print(
        f"   core adds {added:.2f} ms per turn over raw HTTP ({core_med / raw_med:.2f}x; "
        f"{core_med - sdk_med:+.2f} ms against SDK create(), whose request walk the core skips): "
        f"{'PASS' if added < 5 else 'MISS'} (target < 5 ms)"
    )


@asynccontextmanager
async def fake_in_subprocess(*args: str) -> AsyncIterator[str]:
    """Run the fake LLM in its own process so its CPU does not count against the core's loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.serve_openai", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    url = (await proc.stdout.readline()).decode().strip()
    try:
        yield url
    finally:
        proc.stdin.close()
        await proc.wait()


async def sdk_floor(url: str) -> float:
    """Time 200 concurrent pairs of chat calls through the client the core uses, with no core around it."""
    client = LeanAsyncOpenAI(base_url=url, api_key="sk-bench", max_retries=0, http_client=async_http(30))
    request = {"model": "bench", "messages": [{"role": "user", "content": "compute something"}]}

    async def pair() -> None:
        await client.chat.completions.create(**request)
        await client.chat.completions.create(**request)

    await pair()
    t0 = time.perf_counter()
    await asyncio.gather(*(pair() for _ in range(200)))
    elapsed = (time.perf_counter() - t0) * 1000
    await client.close()
    return elapsed


async def one_turn(core, i: int) -> float:  # type: ignore[no-untyped-def]
    sink = RecordingSink()
    t0 = time.perf_counter()
    await core.submit(ask(i, workspace=f"S{i}"), sink)
    await core.wait_idle(30)
    return (time.perf_counter() - t0) * 1000


async def concurrent(tmp: Path) -> None:
    async with fake_in_subprocess(
        "--latency", "0.2", "0.2", "--auto-code", "result = 1", "--text", "one"
    ) as url:
        settings = settings_for(tmp / "b", url)
        (tmp / "b").mkdir()
        async with open_core(settings, runner=InstantRunner()) as core:
            gc.freeze()  # as `codebot slack|discord|console` does once the core is built
            singles = [await one_turn(core, i) for i in range(3)]
            single = statistics.median(singles)
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
        floor = await sdk_floor(url)
    answered = sum(1 for s in sinks if s.answers == ["one"])
    print("2. 200 concurrent threads, fake LLM (own process) 200 ms per call, 2 calls per turn")
    print(
        f"   single turn {single:.0f} ms; 200 turns all done in {total:.0f} ms "
        f"({total / single:.2f}x single): {'PASS' if total < 2 * single else 'MISS'} (target < 2x)"
    )
    print(f"   answered {answered}/200")
    print(
        f"   for scale: the same 400 LLM calls alone, through the core's SDK client without the core: "
        f"{floor:.0f} ms ({floor / single:.2f}x single)"
    )
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
