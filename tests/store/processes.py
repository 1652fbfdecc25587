"""Run a store script in several real processes at once, as several bot replicas on one host would."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # so the child process can import the project


async def race(script: str, target: str | Path, processes: int, timeout_s: float = 60.0) -> list[int]:
    """Start `processes` copies of `script` (argv[1] = a CODEBOT_DB value); return what each prints."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(target), stdout=asyncio.subprocess.PIPE, cwd=REPO
        )
        for _ in range(processes)
    ]
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout_s)
    finally:
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
    assert [p.returncode for p in procs] == [0] * processes
    return [int(out) for out, _ in outputs]


# Takes SQLite's write lock in another process and keeps it until its stdin closes.
_LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@asynccontextmanager
async def write_lock_held_elsewhere(db_path: Path) -> AsyncIterator[None]:
    """Hold the database's write lock from another process for the duration of the block."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LOCKER,
        str(db_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"locked\n"
        yield
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
