"""Benchmark a thread workspace's store work per turn: empty vs 1 MB vs 50 MB, all in this one run.

Run: python bench/thread_store_bench.py [--rounds N]   (SQLite in a temporary directory; PostgreSQL too
when CODEBOT_BENCH_POSTGRES or CODEBOT_TEST_POSTGRES names a server, in a schema dropped afterwards)

"describe" is what every turn pays to tell the model (list the files, read the state without its blob):
it must not grow with the workspace. "load" is what the first run of a turn pays (every file's bytes and
the state blob), "save" what a run pays to keep one changed 100 KB file and its new state. The ratio
column compares each workspace to the empty one, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from core.store.base import NewFile, Store, ThreadState
from core.store.postgres import PostgresStore
from core.store.sqlite import SQLiteStore
from core.types import ThreadKey
from sandbox.types import KeptName

MiB = 1024 * 1024
CHANGED = NewFile("out.csv", b"x" * 100_000, "run", "x")  # what a run writes
SIZES = {"empty": (0, 0), "1 MB": (512 * 1024, 512 * 1024), "50 MB": (40 * MiB, 10 * MiB)}  # files, state


async def seed(store: Store, key: ThreadKey, files_bytes: int, state_bytes: int) -> None:
    if files_bytes:
        parts = max(1, files_bytes // (10 * MiB))
        size = files_bytes // parts
        files = [NewFile(f"part{i}.csv", b"a,b\n" * (size // 4), "attached", "a,b") for i in range(parts)]
        await store.put_files(key, files, 1.0)
    if state_bytes:
        await store.save_state(
            key, ThreadState(b"s" * state_bytes, state_bytes, (KeptName("df", "DataFrame"),)), 1.0
        )


async def timed(rounds: int, fn: Callable[[], Awaitable[object]]) -> float:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return statistics.median(out)


async def bench(store: Store, rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, (files_bytes, state_bytes) in SIZES.items():
        key = ThreadKey("slack", "T1", "C1", f"bench-{name}")
        await seed(store, key, files_bytes, state_bytes)
        state = ThreadState(b"t" * max(state_bytes, 1), max(state_bytes, 1))

        async def describe(key: ThreadKey = key) -> None:
            await store.list_files(key)
            await store.load_state(key, with_blob=False)

        async def load(key: ThreadKey = key) -> None:
            await store.read_files(key)
            await store.load_state(key)

        async def save(key: ThreadKey = key, state: ThreadState = state) -> None:
            await store.put_files(key, [CHANGED], 2.0)
            await store.save_state(key, state, 2.0)

        results[name] = {
            "describe": await timed(rounds, describe),
            "load": await timed(max(3, rounds // 4), load),
            "save": await timed(max(3, rounds // 4), save),
        }
    return results


def report(backend: str, results: dict[str, dict[str, float]]) -> None:
    print(f"\n{backend}: median ms per turn (ratio to the empty workspace)")
    print(f"{'workspace':<10}" + "".join(f"{op:>20}" for op in ("describe", "load", "save")))
    empty = results["empty"]
    for name, ops in results.items():
        cells = "".join(
            f"{ops[op]:>11.2f} ({ops[op] / empty[op]:5.1f}x)" for op in ("describe", "load", "save")
        )
        print(f"{name:<10}{cells}")


@contextlib.asynccontextmanager
async def postgres(dsn: str) -> AsyncIterator[Store]:
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    store = PostgresStore(dsn + ("&" if "?" in dsn else "?") + f"search_path={schema}", pool_size=2)
    try:
        await store.open()
        yield store
    finally:
        await store.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        await store.open()
        try:
            report("SQLite", await bench(store, rounds))
        finally:
            await store.close()
    dsn = os.environ.get("CODEBOT_BENCH_POSTGRES") or os.environ.get("CODEBOT_TEST_POSTGRES")
    if dsn:
        async with postgres(dsn) as pg:
            report("PostgreSQL", await bench(pg, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    asyncio.run(main(parser.parse_args().rounds))
