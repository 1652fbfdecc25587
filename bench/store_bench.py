"""Benchmark the stores: per-call latency and a turn's store work on SQLite and PostgreSQL side by side,
usage() at scale, and the last-slot race under load.

Run: python bench/store_bench.py   (SQLite in a temporary directory; PostgreSQL too when
CODEBOT_BENCH_POSTGRES or CODEBOT_TEST_POSTGRES names a server, in a schema dropped afterwards)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite

from core.store.base import AuditRecord, Store, Turn, UsageRecord, Workspace
from core.store.postgres import PostgresStore
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


@contextlib.asynccontextmanager
async def _postgres_target() -> AsyncIterator[str | None]:
    """Yield a DSN on a fresh schema of the configured server (None when there is none), then drop it."""
    dsn = os.environ.get("CODEBOT_BENCH_POSTGRES") or os.environ.get("CODEBOT_TEST_POSTGRES")
    if not dsn:
        yield None
        return
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield dsn + ("&" if "?" in dsn else "?") + f"search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def main() -> None:
    """Print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        async with _postgres_target() as dsn:
            stores: dict[str, Store] = {"sqlite": SQLiteStore(path)}
            if dsn is not None:
                stores["postgres"] = PostgresStore(dsn)
            else:
                print("(PostgreSQL skipped: set CODEBOT_BENCH_POSTGRES=postgresql://...)")
            for store in stores.values():
                await store.open()
            now = time.time()
            try:
                await _latencies(stores, now)
                await _turns(stores, now, dsn)
                sqlite = stores["sqlite"]
                assert isinstance(sqlite, SQLiteStore)
                await _usage_scaling(sqlite, path, now)
                await _concurrency("SQLite, two connections on one file", sqlite, SQLiteStore(path), now)
                if dsn is not None:
                    await _concurrency("PostgreSQL, two pools", stores["postgres"], PostgresStore(dsn), now)
            finally:
                for store in stores.values():
                    await store.close()


async def _latencies(stores: dict[str, Store], now: float) -> None:
    names = list(stores)
    print("per-call latency, sequential, ms (median / p99):   " + "".join(f"{n:>22}" for n in names))
    calls: dict[str, Callable[[Store], Callable[[int], Awaitable[object]]]] = {
        "claim_event": lambda s: lambda i: s.claim_event("slack", f"E{i}", now, 86400.0),
        "take_slot": lambda s: lambda i: s.take_slot(f"runs:U{i % 50}", 20, 3600.0, now + i),
        "commit_turn": lambda s: lambda i: s.commit_turn(_turn(i, now + i)),
        "load_messages(40)": lambda s: lambda i: s.load_messages(_turn(i, now).key, 40),
        "has_conversation": lambda s: lambda i: s.has_conversation(_turn(i, now).key),
    }
    for name, make in calls.items():
        cells = []
        for store in stores.values():
            ms = await _timed(2000, make(store))
            cells.append(f"{statistics.median(ms):9.3f} / {_p(ms, 0.99):8.3f}")
        print(f"  {name:<48}" + "".join(f"{c:>22}" for c in cells))


async def _one_turn(store: Store, n: int, now: float) -> int:
    """Make the store calls one answered question makes (service, limits engine, turn); return the count."""
    turn = _turn(n, now)
    ws, key = turn.usage.workspace, turn.key
    await store.claim_event("slack", f"T{n}", now, 86400.0)
    await store.has_conversation(key)
    await store.limits(ws)
    await store.bucket_total(f"tokens:{ws}", 86400.0, now)
    await store.bucket_total(f"runs:{ws}", 86400.0, now)
    await store.take_slot(f"runs:{ws}:{turn.usage.user_id}", 1000, 3600.0, now)
    await store.take_slot(f"runs:{ws}", 100_000, 86400.0, now)
    await store.start_turn(key, turn.event_id, turn.usage.user_id, "sqrt of 2?", now)
    await store.load_messages(key, 40)
    await store.commit_turn(turn)
    await store.add_to_bucket(f"tokens:{ws}", 420, 86400.0, now)
    return 11


async def _turns(stores: dict[str, Store], now: float, dsn: str | None) -> None:
    print("one question's store work (11 calls: claim, follow-up check, limits, 2 totals, 2 slots,")
    print("start, history, commit, tokens), ms per question (median / p99):")
    runs = list(stores.items())
    if dsn is not None:
        # The same calls without waiting for the server's disk flush: the round trips' share of the cost.
        runs.append(("postgres, no flush (reference)", PostgresStore(dsn + "&synchronous_commit=off")))
        await runs[-1][1].open()
    try:
        for n, (name, store) in enumerate(runs):
            base = 100_000 * (n + 1)
            ms = await _timed(1000, lambda i, s=store, b=base: _one_turn(s, b + i, now + i))  # type: ignore[misc]
            print(f"  {name:<32} {statistics.median(ms):7.3f} / {_p(ms, 0.99):7.3f}")
    finally:
        if dsn is not None:
            await runs[-1][1].close()


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


async def _concurrency(label: str, store: Store, other: Store, now: float) -> None:
    await other.open()
    try:
        calls = [(store if i % 2 else other).take_slot("runs:T1", 100, 3600.0, now) for i in range(1000)]
        start = time.perf_counter()
        lag = await _max_loop_lag(asyncio.gather(*calls))
        elapsed = time.perf_counter() - start
        granted = await store.bucket_total("runs:T1", 3600.0, now)
    finally:
        await other.close()
    print(f"1000 concurrent take_slot(limit 100), {label}:")
    print(
        f"  granted {granted} (must be 100), {1000 / elapsed:,.0f} calls/s, worst event-loop lag {lag:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
