"""Benchmark the SQLite store: per-call latency, usage() at scale, and event-loop lag under load.

Run: python bench/store_bench.py   (writes only to a temporary directory)
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from core.store.base import AuditRecord, Turn, UsageRecord, Workspace
from core.store.sqlite import SQLiteStore
from core.types import ThreadKey

WS = Workspace("slack", "T1")
WEEK = 7 * 86400.0


def _turn(n: int, at: float) -> Turn:
    key = ThreadKey("slack", "T1", "C1", f"thread-{n % 200}")
    audit = AuditRecord(key, f"U{n % 50}", at, 1, "print(2 ** 0.5)", True, "low", "", "ok", 0, 40.0)
    messages = ('{"role": "user", "content": "sqrt of 2?"}', '{"role": "assistant", "content": "1.414"}')
    usage = UsageRecord(WS, f"U{n % 50}", at, runs=1, tokens=420, sandbox_ms=40.0)
    return Turn(key, f"ev-{n}", messages, (audit,), usage)


async def _timed(calls: int, make: Callable[[int], Awaitable[object]]) -> list[float]:
    """Run `make(i)` sequentially; return each call's duration in ms."""
    out = []
    for i in range(calls):
        start = time.perf_counter()
        await make(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def _seed_usage(path: Path, rows: int, now: float) -> None:
    """Insert usage rows spread over 30 days, 20 workspaces and 50 users each, straight into the file."""
    rng = random.Random(7)
    data = []
    for _ in range(rows):
        at = now - rng.random() * 30 * 86400
        data.append(("slack", f"T{rng.randrange(1, 21)}", f"U{rng.randrange(50)}", at, 1, 1, 0, 400, 35.0))
    async with aiosqlite.connect(path) as db:
        await db.executemany(
            """INSERT INTO usage (platform, workspace, user_id, at, questions, runs, refusals, tokens,
                                  sandbox_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            data,
        )
        await db.commit()


async def _max_loop_lag(work: Awaitable[object]) -> float:
    """Run `work` while a 1 ms ticker measures the worst event-loop delay, in ms."""
    worst = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, (time.perf_counter() - start) * 1000 - 1)

    ticker = asyncio.create_task(tick())
    try:
        await work
    finally:
        done.set()
        await ticker
    return worst


async def main() -> None:
    """Print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = SQLiteStore(path)
        await store.open()
        now = time.time()
        try:
            await _latencies(store, now)
            await _usage_scaling(store, path, now)
            await _concurrency(store, path, now)
        finally:
            await store.close()


async def _latencies(store: SQLiteStore, now: float) -> None:
    print("per-call latency, sequential, ms (median / p99):")
    rows = {
        "claim_event": await _timed(2000, lambda i: store.claim_event("slack", f"E{i}", now, 86400.0)),
        "take_slot": await _timed(2000, lambda i: store.take_slot(f"runs:U{i % 50}", 20, 3600.0, now + i)),
        "commit_turn": await _timed(2000, lambda i: store.commit_turn(_turn(i, now + i))),
        "load_messages(40)": await _timed(2000, lambda i: store.load_messages(_turn(i, now).key, 40)),
    }
    for name, ms in rows.items():
        print(f"  {name:<20} {statistics.median(ms):7.3f} / {_p(ms, 0.99):7.3f}")


async def _usage_scaling(store: SQLiteStore, path: Path, now: float) -> None:
    await _seed_usage(path, 10_000, now)
    small = await _timed(200, lambda i: store.usage(Workspace("slack", "T3"), now - WEEK))
    await _seed_usage(path, 190_000, now)
    large = await _timed(200, lambda i: store.usage(Workspace("slack", "T3"), now - WEEK))
    user = await _timed(200, lambda i: store.usage(Workspace("slack", "T3"), now - WEEK, "U7"))
    ratio = statistics.median(large) / statistics.median(small)
    print("usage(workspace, last 7 days), median ms (20 workspaces, rows spread over 30 days):")
    print(f"  10k rows in file     {statistics.median(small):7.3f}   (~120 rows in the window)")
    print(
        f"  200k rows in file    {statistics.median(large):7.3f}   (~2,300 rows in the window; x{ratio:.1f})"
    )
    print(f"  one user, 200k rows  {statistics.median(user):7.3f}")


async def _concurrency(store: SQLiteStore, path: Path, now: float) -> None:
    other = SQLiteStore(path)
    await other.open()
    try:
        calls = [(store if i % 2 else other).take_slot("runs:T1", 100, 3600.0, now) for i in range(1000)]
        start = time.perf_counter()
        lag = await _max_loop_lag(asyncio.gather(*calls))
        elapsed = time.perf_counter() - start
        granted = await store.bucket_total("runs:T1", 3600.0, now)
    finally:
        await other.close()
    print("1000 concurrent take_slot(limit 100) from two connections on one file:")
    print(
        f"  granted {granted} (must be 100), {1000 / elapsed:,.0f} calls/s, worst event-loop lag {lag:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
