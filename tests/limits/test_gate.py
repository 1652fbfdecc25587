"""The per-workspace queue: cap, FIFO order, position messages, cancellation and fairness."""

from __future__ import annotations

import asyncio

from core.limits import WorkspaceGate
from core.store.base import Workspace

A, B = Workspace("slack", "TA"), Workspace("discord", "GB")


class Turn:
    """A queued turn that holds its slot until the test releases it."""

    def __init__(self, gate: WorkspaceGate, ws: Workspace, cap: int, name: str, log: list[str]) -> None:
        self.positions: list[int] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(gate, ws, cap, name, log))

    async def _run(self, gate: WorkspaceGate, ws: Workspace, cap: int, name: str, log: list[str]) -> None:
        async with gate.slot(ws, cap, self.on_queued):
            log.append(name)
            self.started.set()
            await self.release.wait()

    async def on_queued(self, position: int) -> None:
        self.positions.append(position)


async def settle() -> None:
    for _ in range(10):  # enough loop passes for every wake-up to run; bounded
        await asyncio.sleep(0)


async def start(gate: WorkspaceGate, ws: Workspace, cap: int, names: str, log: list[str]) -> list[Turn]:
    turns = []
    for name in names:
        turns.append(Turn(gate, ws, cap, name, log))
        await settle()  # each arrives after the previous one is queued
    return turns


async def test_cap_fifo_order_and_positions() -> None:
    gate, log = WorkspaceGate(), []
    h1, h2, w1, w2, w3 = await start(gate, A, 2, "HIxyz", log)
    assert log == ["H", "I"] and (gate.running(A), gate.waiting(A)) == (2, 3)
    assert (h1.positions, w1.positions, w2.positions, w3.positions) == ([], [1], [2], [3])
    h2.release.set()
    await settle()
    assert log == ["H", "I", "x"] and gate.running(A) == 2
    assert (w2.positions, w3.positions) == ([2, 1], [3, 2])
    for t in (h1, w1, w2, w3):
        t.release.set()
    await asyncio.wait_for(asyncio.gather(*(t.task for t in (h1, h2, w1, w2, w3))), 2)
    assert log == ["H", "I", "x", "y", "z"]
    assert (gate.running(A), gate.waiting(A)) == (0, 0)


async def test_position_reports_coalesce_while_the_user_is_being_told() -> None:
    gate, log = WorkspaceGate(), []
    holder, first, second = await start(gate, A, 1, "Hab", log)
    unblock = asyncio.Event()
    reported: list[int] = []

    async def slow_notice(position: int) -> None:
        reported.append(position)
        if len(reported) == 1:
            await unblock.wait()  # the chat platform is slow to post "you are number 3"

    async def third() -> None:
        async with gate.slot(A, 1, slow_notice):
            log.append("c")

    task = asyncio.create_task(third())
    await settle()
    holder.release.set()
    await settle()
    first.release.set()
    await settle()
    unblock.set()
    await settle()
    assert reported == [3, 1]  # 2 was never worth a message: it was already stale
    second.release.set()
    await asyncio.wait_for(task, 2)
    assert log == ["H", "a", "b", "c"]


async def test_a_cancelled_waiter_leaves_the_queue_and_others_move_up() -> None:
    gate, log = WorkspaceGate(), []
    holder, quitter, patient = await start(gate, A, 1, "Hqp", log)
    quitter.task.cancel()
    await settle()
    assert patient.positions == [2, 1] and gate.waiting(A) == 1
    holder.release.set()
    patient.release.set()
    await asyncio.wait_for(patient.task, 2)
    assert log == ["H", "p"] and (gate.running(A), gate.waiting(A)) == (0, 0)


async def test_a_busy_workspace_does_not_starve_another() -> None:
    gate, log = WorkspaceGate(), []
    busy = await start(gate, A, 1, "H12345", log)
    other = await start(gate, B, 1, "o", log)
    await asyncio.wait_for(other[0].started.wait(), 1)
    assert other[0].positions == [] and gate.waiting(A) == 5
    for t in (*busy, *other):
        t.release.set()
    await asyncio.wait_for(asyncio.gather(*(t.task for t in (*busy, *other))), 2)


async def test_the_cap_is_never_exceeded_under_load() -> None:
    gate, peak, now_running = WorkspaceGate(), [0], [0]

    async def work(i: int) -> None:
        async with gate.slot(A, 3, _ignore):
            now_running[0] += 1
            peak[0] = max(peak[0], now_running[0])
            await asyncio.sleep(0.001 * (i % 3))
            now_running[0] -= 1

    await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(30))), 5)
    assert peak[0] == 3 and gate.running(A) == 0


async def test_a_failing_position_message_does_not_cost_the_place() -> None:
    gate, log = WorkspaceGate(), []
    (holder,) = await start(gate, A, 1, "H", log)

    async def broken(position: int) -> None:
        raise RuntimeError("chat platform down")

    async def unlucky() -> None:
        async with gate.slot(A, 1, broken):
            log.append("u")

    task = asyncio.create_task(unlucky())
    await settle()
    holder.release.set()
    await asyncio.wait_for(task, 2)
    assert log == ["H", "u"]


async def _ignore(position: int) -> None:
    return None
