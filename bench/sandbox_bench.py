"""Benchmark the sandbox against bare Python, all measured in this one run, in interleaved rounds.

Run: python bench/sandbox_bench.py [--rounds N]   (needs `codebot setup`; about a minute)

Every figure is the wall time the caller waits for, taken around `await` in this process. Bare Python is
spawned the same way as the sandbox (an asyncio subprocess of the same interpreter, output read through
pipes), so the ratios compare like with like. Each round runs every variant once, in a rotated order,
so drift in machine load hits all variants alike.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable

from sandbox import RunResult, Sandbox, SandboxConfig

PRINT = "print(1)"
# The same work, sent to a pre-imported slot (a dynamic-import word keeps it off the lean slot, lean.py)
PRINT_HEAVY = "print(1)  # __import__"
NUMPY = "import numpy; print(1)"
BURST_RUNS, BURST_CAP = 100, 4
BURST_CODE = "result = sum(i * i for i in range(100_000))"


def pct(values: list[float], q: float) -> float:
    """Return the q-quantile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    """Return how long one awaited call took, in milliseconds."""
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1000


async def bare_python(cfg: SandboxConfig, code: str) -> None:
    """Start the interpreter the way the sandbox does (asyncio subprocess, piped output) and wait."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cfg.site_dir)}  # the sandbox's numpy, no sandbox
    proc = await asyncio.create_subprocess_exec(
        str(cfg.python), "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await proc.communicate()
    if proc.returncode != 0 or out.strip() != b"1":
        raise RuntimeError(f"bare python failed (exit {proc.returncode}): {out!r} {err[-500:]!r}")


async def sandboxed(sb: Sandbox, code: str, inside: list[float]) -> None:
    """Run code in the sandbox, check that it worked, and note the run's own duration_ms."""
    result = await sb.run(code)
    if not result.ok or result.stdout.strip() != "1":
        raise RuntimeError(f"sandbox run failed: {result.to_json()}")
    inside.append(result.duration_ms)


async def wait_ready(sb: Sandbox, timeout_s: float = 60.0) -> None:
    """Wait until the warm pool (and the lean slot, if any) holds a ready slot, so the next run is warm."""
    deadline = time.monotonic() + timeout_s
    while sb.pool is None or sb.pool.ready < 1 or (sb.lean_pool is not None and sb.lean_pool.ready < 1):
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool never became ready")
        await asyncio.sleep(0.01)


Times = dict[str, list[float]]


async def latency_rounds(cold: Sandbox, warm: Sandbox, rounds: int) -> tuple[Times, Times]:
    """Time every variant once per round, rotating the order; return caller waits and in-sandbox durations."""
    names_inside = (
        "cold print(1)",
        "cold numpy",
        "warm print(1)",
        "warm numpy",
        "warm print(1) pre-imported",
    )
    inside: Times = {name: [] for name in names_inside}
    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "bare python -c print(1)": lambda: bare_python(cold.cfg, PRINT),
        "bare python import numpy": lambda: bare_python(cold.cfg, NUMPY),
        "cold sandbox print(1)": lambda: sandboxed(cold, PRINT, inside["cold print(1)"]),
        "cold sandbox import numpy": lambda: sandboxed(cold, NUMPY, inside["cold numpy"]),
        "warm sandbox print(1)": lambda: sandboxed(warm, PRINT, inside["warm print(1)"]),
        "warm sandbox import numpy": lambda: sandboxed(warm, NUMPY, inside["warm numpy"]),
        "warm print(1) pre-imported": lambda: sandboxed(
            warm, PRINT_HEAVY, inside["warm print(1) pre-imported"]
        ),
    }
    names = list(variants)
    times: Times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            await wait_ready(warm)  # untimed: no pool refill competes with any measured call
            times[name].append(await timed(variants[name]))
    return times, inside


async def burst(cfg: SandboxConfig) -> tuple[float, list[RunResult], list[float]]:
    """Submit BURST_RUNS runs at once to a sandbox capped at BURST_CAP concurrent runs."""
    async with Sandbox(dataclasses.replace(cfg, max_concurrent=BURST_CAP)) as sb:
        await wait_ready(sb)
        waits: list[float] = []

        async def one() -> RunResult:
            start = time.perf_counter()
            result = await sb.run(BURST_CODE)
            waits.append((time.perf_counter() - start) * 1000)
            return result

        start = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(BURST_RUNS)))
        total_ms = (time.perf_counter() - start) * 1000
        await wait_ready(sb)  # closing while a refill was just requested can hang (reported as a bug)
        return total_ms, list(results), waits


def row(name: str, values: list[float]) -> None:
    """Print one variant's median and p90."""
    print(f"  {name:<28} median {statistics.median(values):8.1f} ms   p90 {pct(values, 0.9):8.1f} ms")


def verdict(label: str, num: list[float], den: list[float], target: float) -> bool:
    """Print the ratio of two medians against its target; return whether it is met."""
    ratio = statistics.median(num) / statistics.median(den)
    ok = ratio <= target
    print(f"  {label:<44} {ratio:6.3f}x   target <= {target}x   {'PASS' if ok else 'MISS'}")
    return ok


def report_latency(t: Times, inside: Times, rounds: int) -> None:
    """Print the latency table and the three ratio verdicts."""
    print(f"latency, {rounds} interleaved rounds (wall time seen by the caller):")
    for name, values in t.items():
        row(name, values)
    print("the runs' own duration_ms (code handed over -> exit seen), for where the time goes:")
    for name, values in inside.items():
        row(name, values)
    print("ratios (medians):")
    verdict(
        "cold sandbox print(1) / bare python", t["cold sandbox print(1)"], t["bare python -c print(1)"], 1.5
    )
    verdict(
        "warm sandbox print(1) / bare python", t["warm sandbox print(1)"], t["bare python -c print(1)"], 0.25
    )
    verdict(
        "warm import numpy / cold sandbox import numpy",
        t["warm sandbox import numpy"],
        t["cold sandbox import numpy"],
        0.1,
    )
    # On a shared machine the medians carry other processes' load (more so for the sandbox, whose start
    # hands over between more processes); the 10th percentiles are the same ratios with less of it.
    print("ratios (10th percentiles, less sensitive to other load on the machine):")
    for label, num, den in (
        ("cold sandbox print(1) / bare python", "cold sandbox print(1)", "bare python -c print(1)"),
        ("warm sandbox print(1) / bare python", "warm sandbox print(1)", "bare python -c print(1)"),
        (
            "warm import numpy / cold sandbox import numpy",
            "warm sandbox import numpy",
            "cold sandbox import numpy",
        ),
    ):
        print(f"  {label:<44} {pct(t[num], 0.1) / pct(t[den], 0.1):6.3f}x")
    cold_np = statistics.median(t["cold sandbox import numpy"])
    bare_np = statistics.median(t["bare python import numpy"])
    print(f"  (for reference: cold sandbox import numpy / bare import numpy {cold_np / bare_np:.2f}x)")
    heavy = statistics.median(t["warm print(1) pre-imported"]) / statistics.median(
        t["bare python -c print(1)"]
    )
    print(f"  (for reference: warm print(1) on a pre-imported slot / bare python {heavy:.3f}x)")


def report_burst(total_ms: float, results: list[RunResult], waits: list[float]) -> None:
    """Print the burst's totals and whether every run stayed within its limits."""
    durations = [r.duration_ms for r in results]
    bad = [r.to_json() for r in results if not r.ok or r.killed_reason or r.timed_out or r.truncated]
    print(f"burst: {BURST_RUNS} runs submitted at once, at most {BURST_CAP} at a time:")
    print(f"  total {total_ms:8.1f} ms   ({BURST_RUNS / (total_ms / 1000):.1f} runs/s)")
    med, top = statistics.median(durations), max(durations)
    print(f"  run duration (in sandbox)  median {med:7.1f} ms   max {top:7.1f} ms")
    print(
        f"  caller wait (queue + run)  median {statistics.median(waits):7.1f} ms   max {max(waits):7.1f} ms"
    )
    print(f"  all ok, none killed: {'PASS' if not bad else 'MISS'} ({len(bad)} bad)")
    for item in bad[:3]:
        print(f"    {item}")


async def main(rounds: int) -> None:
    cfg = SandboxConfig.from_env()
    print(f"interpreter {cfg.python}; warm pool pre-imports {', '.join(cfg.preimport) or 'nothing'}")
    started = time.perf_counter()
    async with (
        Sandbox(dataclasses.replace(cfg, pool_size=0)) as cold,
        Sandbox(dataclasses.replace(cfg, pool_size=1)) as warm,
    ):
        times, inside = await latency_rounds(cold, warm, rounds)
        await wait_ready(warm)  # see burst()
    report_latency(times, inside, rounds)
    report_burst(*await burst(cfg))
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (default 25)")
    asyncio.run(main(parser.parse_args().rounds))
