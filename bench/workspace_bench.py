"""Benchmark what a workspace adds to a warm run: none vs empty vs 1 MB vs 50 MB, all in this one run.

Run: python bench/workspace_bench.py [--rounds N] [--cold]   (needs `codebot setup`)

Every variant runs the same code (`x = 1`) in a warm slot (the pool is refilled, untimed, before each
run), with keep_state on for the workspaces. "1 MB" is 512 KB of files plus a ~512 KB kept bytes object;
"50 MB" is 40 MB of files plus a ~10 MB one: the files go in and (unchanged) are hashed on the way out,
the state is restored and saved again. Each round runs every variant once in a rotated order, so drift in
machine load hits all alike. Figures are the wall time the caller waits for; "overhead" is the median
minus the median without a workspace, "p10 over" the same for the 10th percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time

from sandbox import Sandbox, SandboxConfig
from sandbox.types import MiB, OutputFile, RunWorkspace

CODE = "x = 1"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_ready(sb: Sandbox, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sb.pool is not None and sb.pool.ready < 1:  # polling: the pool has no public event
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool never became ready")
        await asyncio.sleep(0.01)


async def make_state(sb: Sandbox, size: int) -> bytes:
    """Return a real state blob holding `size` bytes (saved by a run, as a thread would have it)."""
    got = await sb.run(f"blob = b'x' * {size}", workspace=RunWorkspace(keep_state=True))
    if not got.state_saved:
        raise RuntimeError(f"no state saved: {got.error} {got.dropped}")
    return got.state


async def variants(sb: Sandbox) -> dict[str, RunWorkspace | None]:
    small = (OutputFile("data.csv", b"a,b\n" + b"1,2\n" * (128 * 1024)),)  # 512 KB
    large = tuple(OutputFile(f"part{i}.bin", bytes([i]) * (10 * MiB)) for i in range(4))  # 40 MB
    return {
        "none": None,
        "empty": RunWorkspace(keep_state=True),
        "1 MB": RunWorkspace(files=small, state=await make_state(sb, 512 * 1024), keep_state=True),
        "50 MB": RunWorkspace(files=large, state=await make_state(sb, 10 * MiB), keep_state=True),
    }


async def main(rounds: int, cold: bool) -> None:
    base = SandboxConfig.from_env()
    limits = base.default_limits.replace(output_dir_mb=64, timeout_s=60, memory_mb=1024)
    cfg = dataclasses.replace(base, pool_size=0 if cold else 1, preimport=("numpy",), default_limits=limits)
    times: dict[str, list[float]] = {}
    async with Sandbox(cfg) as sb:
        cases = await variants(sb)
        names = list(cases)
        times = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                await wait_ready(sb)
                start = time.perf_counter()
                got = await sb.run(CODE, workspace=cases[name])
                times[name].append((time.perf_counter() - start) * 1000)
                if not got.ok or got.files:
                    raise RuntimeError(f"{name}: {got.error} files={[f.name for f in got.files]}")
    none = statistics.median(times["none"])
    mode = "cold" if cold else "warm"
    print(f"{mode} run of `{CODE}`, {rounds} interleaved rounds (ms)")
    # p10 too: on a shared machine the low end shows the cost itself, the median adds others' load
    low = pct(times["none"], 0.1)
    heads = ("median", "p10", "p90", "overhead", "p10 over", "x none")
    print(f"{'workspace':<10} " + " ".join(f"{h:>8}" for h in heads))
    for name in names:
        med, p10 = statistics.median(times[name]), pct(times[name], 0.1)
        row = (med, p10, pct(times[name], 0.9), med - none, p10 - low, med / none)
        print(f"{name:<10} " + " ".join(f"{v:8.2f}" for v in row))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="no warm pool: every run starts an interpreter")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.cold))
