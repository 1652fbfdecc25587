"""Warm pool: sandboxes started in advance (imports done), each used once, refilled in the background."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sandbox.runner import Slot

log = logging.getLogger(__name__)


class Tracker:
    """Owns background tasks so none is forgotten: close() cancels and awaits them all."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run coro as a tracked task."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("sandbox background task failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for every tracked task to finish (clean-ups are short and bounded)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every tracked task and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()


class WarmPool:
    """Keeps up to `size` ready sandboxes; a sandbox older than max_age_s is replaced unused."""

    def __init__(
        self,
        spawn: Callable[[], Awaitable[Slot]],
        destroy: Callable[[Slot], Coroutine[Any, Any, None]],
        tracker: Tracker,
        size: int,
        max_age_s: float,
    ) -> None:
        self._spawn, self._destroy, self._tracker = spawn, destroy, tracker
        self._size, self._max_age_s = size, max_age_s
        self._ready: collections.deque[Slot] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.spawned = 0  # slots ever started (for tests and doctor)

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def idle_pids(self) -> list[int]:
        """Host pids of the idle sandboxes' outer processes."""
        return [slot.proc.pid for slot in self._ready]

    def start(self) -> None:
        """Begin filling the pool in the background."""
        self._task = asyncio.create_task(self._refill(), name="sandbox-pool-refill")

    def take(self, fits: Callable[[Slot], bool]) -> Slot | None:
        """Hand out a fresh ready slot that fits, or None (the caller then starts one cold)."""
        for slot in list(self._ready):
            if not self._alive(slot):
                self._ready.remove(slot)
                self._tracker.start(self._destroy(slot))
            elif fits(slot):
                self._ready.remove(slot)
                return slot
        return None

    async def close(self) -> None:
        """Stop refilling and destroy every idle slot."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._ready:
            await self._destroy(self._ready.popleft())

    def wake(self) -> None:
        """Ask for a refill; called after a run, so spawning never competes with a run's start."""
        self._wake.set()

    def _alive(self, slot: Slot) -> bool:
        return slot.proc.returncode is None and time.monotonic() - slot.born < self._max_age_s

    async def _refill(self) -> None:
        backoff = 0.5
        while True:
            for slot in [s for s in self._ready if not self._alive(s)]:
                self._ready.remove(slot)
                self._tracker.start(self._destroy(slot))
            if len(self._ready) < self._size:
                try:
                    slot = await self._spawn()
                except Exception as exc:  # keep serving cold runs; retry later
                    log.warning("warm sandbox failed to start (retrying in %.1fs): %s", backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                self.spawned += 1
                self._ready.append(slot)
                continue
            self._wake.clear()
            oldest = min(s.born for s in self._ready) if self._ready else time.monotonic()
            wait_s = max(0.05, oldest + self._max_age_s - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._wake.wait()
