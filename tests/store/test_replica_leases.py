"""The store-backed workspace queue between real processes on one database.

A child process (another replica) takes a workspace slot and holds it until told to let go, or until
it is killed with SIGKILL; this process's StoreGate must wait for it in FIFO order, report positions,
and take over once the holder lets go or its lease runs out. (Thread locks across processes are the
turns' own: tests/store/test_turn_leases.py and tests/scale.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core.limits.store_gate import StoreGate
from core.store.base import Store
from tests.store.backends import Backend
from tests.store.processes import REPO
from tests.store.records import WS

# Short, so a killed holder's lease runs out soon, yet renewals (every LEASE / 3) have two seconds of
# slack on a loaded machine before anyone could take a live holder's place.
LEASE = 3.0
POLL = 0.05
TIMEOUT = 60.0  # generous: only a hang reaches it

_HOLDER = """
import asyncio, sys
from core.limits.store_gate import StoreGate
from core.store.factory import make_store
from tests.store.records import WS

async def main():
    target, lease = sys.argv[1], float(sys.argv[2])
    store = make_store(target)
    await store.open()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def queued(position):
        print(f"queued {position}", flush=True)

    try:
        async with StoreGate(store, lease_s=lease, poll_s=0.05).slot(WS, 1, queued):
            print("holding", flush=True)
            await stdin.readline()  # "release", or EOF
        print("released", flush=True)
    finally:
        await store.close()

asyncio.run(main())
"""


@dataclass
class Holder:
    proc: asyncio.subprocess.Process

    async def expect(self, line: str) -> None:
        assert self.proc.stdout is not None
        got = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        assert got.decode().strip() == line

    async def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"release\n")
        await self.proc.stdin.drain()
        await self.expect("released")


@asynccontextmanager
async def holder(backend: Backend) -> AsyncIterator[Holder]:
    """Start a replica process that takes the slot; it is killed on the way out if still alive."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        backend.target,
        str(LEASE),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        yield Holder(proc)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()


class Waiter:
    """This process's turn in the queue, run as a task; records positions and when it gets in."""

    def __init__(self, gate: StoreGate) -> None:
        self.positions: list[int] = []
        self.moved = asyncio.Event()
        self.inside = asyncio.Event()
        self.leave = asyncio.Event()
        self.task = asyncio.create_task(self._run(gate))

    async def _queued(self, position: int) -> None:
        self.positions.append(position)
        self.moved.set()

    async def _run(self, gate: StoreGate) -> None:
        async with gate.slot(WS, 1, self._queued):
            self.inside.set()
            await self.leave.wait()

    async def position(self, expected: int) -> None:
        while not self.positions or self.positions[-1] != expected:
            self.moved.clear()
            await asyncio.wait_for(self.moved.wait(), TIMEOUT)


async def _open(backend: Backend) -> Store:
    store = backend.new()
    await store.open()
    return store


async def test_a_slot_held_by_another_replica_queues_this_one_until_it_is_released(backend: Backend) -> None:
    store = await _open(backend)
    try:
        async with holder(backend) as other:
            await other.expect("holding")
            mine = Waiter(StoreGate(store, lease_s=LEASE, poll_s=POLL))
            await mine.position(1)
            assert not mine.inside.is_set()
            assert await StoreGate(store).counts(WS) == (1, 1)

            await other.release()
            await asyncio.wait_for(mine.inside.wait(), TIMEOUT)
            mine.leave.set()
            await asyncio.wait_for(mine.task, TIMEOUT)
        assert mine.positions == [1]
        assert await StoreGate(store).counts(WS) == (0, 0)
    finally:
        await store.close()


async def test_the_queue_is_first_come_first_served_across_replicas(backend: Backend) -> None:
    store = await _open(backend)
    try:
        async with holder(backend) as first:
            await first.expect("holding")
            async with holder(backend) as second:
                await second.expect("queued 1")  # the second replica queues behind the first
                mine = Waiter(StoreGate(store, lease_s=LEASE, poll_s=POLL))
                await mine.position(2)

                await first.release()
                await second.expect("holding")  # the earlier ticket goes first, in another process
                await mine.position(1)
                assert not mine.inside.is_set()

                await second.release()
                await asyncio.wait_for(mine.inside.wait(), TIMEOUT)
                mine.leave.set()
                await asyncio.wait_for(mine.task, TIMEOUT)
        assert mine.positions == [2, 1]
    finally:
        await store.close()


async def test_a_killed_replicas_slot_frees_when_its_lease_runs_out(backend: Backend) -> None:
    store = await _open(backend)
    try:
        async with holder(backend) as other:
            await other.expect("holding")
            mine = Waiter(StoreGate(store, lease_s=LEASE, poll_s=POLL))
            await mine.position(1)
            other.proc.send_signal(signal.SIGKILL)  # no release, no clean-up: only the lease can end it
            await other.proc.wait()
            await asyncio.wait_for(mine.inside.wait(), TIMEOUT)
            mine.leave.set()
            await asyncio.wait_for(mine.task, TIMEOUT)
    finally:
        await store.close()
