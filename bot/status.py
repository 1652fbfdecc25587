"""The coalescing status and the reactions on a question, for every platform.

The platform only says how to show a state (set the thread status, post or edit a message) and how to
add or remove a reaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task that may still run and wait until it has stopped."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Coalescer(Generic[T]):
    """Shows the newest of a stream of states through `show`, at most once per `interval_s`.

    Intermediate states closer together than the interval are replaced by the newest one, which is shown
    when the interval has passed; a final state is shown at once and drops anything pending. A state equal
    to the one shown is not shown again. `show` must absorb platform failures itself.
    """

    def __init__(
        self,
        show: Callable[[T], Awaitable[object]],
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._show_fn = show
        self._interval = interval_s
        self._clock = clock
        self._shown: T | None = None
        self._wanted: T | None = None
        self._last = float("-inf")
        self._flush: asyncio.Task[None] | None = None
        self._generation = 0
        self._lock = asyncio.Lock()  # the first show must finish before an update can refer to it

    @property
    def shown_any(self) -> bool:
        return self._last != float("-inf")

    def mark_shown(self, value: T) -> None:
        """Note that `value` was just shown by other means (posted): the interval runs from now."""
        self._shown = self._wanted = value
        self._last = self._clock()

    async def update(self, value: T, *, final: bool = False) -> None:
        """Show `value` now, or as soon as the interval allows (final: now, dropping what is pending)."""
        self._wanted = value
        if final:
            await self.cancel()
            await self._apply()
            return
        if self._flush is not None and not self._flush.done():
            return  # the pending flush picks up the newest value
        wait = self._last + self._interval - self._clock()
        if wait <= 0:
            await self._apply()
        else:
            task = self._apply_later(wait, self._generation)
            self._flush = asyncio.create_task(task, name="status flush")

    async def flush(self) -> None:
        """Wait for a pending update to be shown."""
        task = self._flush
        if task is not None and not task.done():
            await asyncio.gather(task, return_exceptions=True)

    async def cancel(self) -> None:
        """Drop a pending update; one already being shown finishes first (its message must be known)."""
        self._generation += 1  # a shielded flush that has not started yet will not show anything
        task, self._flush = self._flush, None
        await cancel_and_wait(task)
        async with self._lock:
            pass

    async def _apply_later(self, delay: float, generation: int) -> None:
        await asyncio.sleep(delay)
        # Shielded: cancelling a flush must not cut a post in half (Slack would keep a message whose ts
        # we never learn, so it could not be deleted); cancel() waits for it through the lock instead.
        await asyncio.shield(self._apply(generation))

    async def _apply(self, generation: int | None = None) -> None:
        async with self._lock:
            if generation is not None and generation != self._generation:
                return
            value = self._wanted
            if value is None or (self.shown_any and value == self._shown):
                return
            self._last = self._clock()
            await self._show_fn(value)
            self._shown = value


React = Callable[[str], Awaitable[object]]


class QuestionMarks:
    """The reactions on a question: `working` once accepted, then `done` or `failed` when it is answered.

    The turn may finish before the `working` reaction was even attempted (a fast answer), so `finish`
    waits briefly for `start`; otherwise the working mark would be added after it was removed, and stay.
    Reactions are cosmetic: the platform `errors` are logged, never raised.
    """

    def __init__(
        self,
        add: React,
        remove: React,
        *,
        errors: tuple[type[BaseException], ...],
        working: str,
        done: str,
        failed: str,
        started: bool = False,
        start_wait_s: float = 5.0,
    ) -> None:
        self._add = add
        self._remove = remove
        self._errors = errors
        self._names = (working, done, failed)
        self._started = asyncio.Event()
        if started:  # the working mark is already there (or never will be)
            self._started.set()
        self._wait = start_wait_s
        self._finished = False

    async def start(self, accepted: bool) -> None:
        """Add the working mark to an accepted question."""
        try:
            if accepted and self._names[0] and not self._finished:
                await self._react(self._add, self._names[0])
        finally:
            self._started.set()

    async def finish(self, ok: bool) -> None:
        """Swap the working mark for how the turn ended; only the first call counts."""
        if self._finished:
            return
        self._finished = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), self._wait)
        working, done, failed = self._names
        if working:
            await self._react(self._remove, working)
        await self._react(self._add, done if ok else failed)

    async def _react(self, call: React, name: str) -> None:
        try:
            await call(name)
        except self._errors as exc:
            log.info("reaction %s failed: %s", name, type(exc).__name__)
