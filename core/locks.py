"""Per-thread locks that disappear when nobody holds or waits for them: in-process, or across replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager

from core.store.base import Leases, StoreError
from core.types import ThreadKey

log = logging.getLogger(__name__)


class KeyedLocks:
    """Serialise work per key; different keys run concurrently. Memory stays bounded by active keys."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class StoreThreadLocks:
    """Per-thread locks that hold across processes: a lease row in the store, renewed while held.

    This process's own waiters queue on a local KeyedLocks first, so only one of them polls the store;
    a lock whose holder died is taken over once its lease ends. Same `hold` shape as KeyedLocks.
    """

    def __init__(
        self,
        store: Leases,
        *,
        lease_s: float = 60.0,
        poll_s: float = 0.25,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._clock = clock
        self._owner = owner or uuid.uuid4().hex[:12]
        self._local = KeyedLocks()

    @asynccontextmanager
    async def hold(self, key: ThreadKey) -> AsyncIterator[None]:
        async with self._local.hold(key):
            # A token of this hold's own, so a stale renewal of an earlier hold never matches it.
            token = f"{self._owner}:{uuid.uuid4().hex[:8]}"
            # Polling, because the holder is another process: no event of ours fires when it lets go.
            while not await self._store.lock_thread(key, token, self._clock(), self._lease_s):  # noqa: ASYNC110
                await asyncio.sleep(self._poll_s)
            renewing = asyncio.create_task(self._renew(key, token))
            try:
                yield
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                try:
                    await asyncio.shield(self._store.unlock_thread(key, token))
                except StoreError as exc:
                    log.warning(
                        "could not release the lock of %s (it frees when its lease ends): %s", key, exc
                    )

    async def _renew(self, key: ThreadKey, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                if not await self._store.lock_thread(key, token, self._clock(), self._lease_s):
                    log.error("the lock of %s expired while held (this process stalled)", key)
            except StoreError as exc:
                log.warning("could not renew the lock of %s: %s", key, exc)

    def __len__(self) -> int:
        return len(self._local)
