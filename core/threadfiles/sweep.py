"""The retention sweep: delete thread workspaces idle for longer than CODEBOT_WORKSPACE_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from core.store.base import StoreError, ThreadFiles

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 3600.0  # idle workspaces only cost disk space: an hourly sweep is plenty
DAY_S = 86400.0


class WorkspaceSweeper:
    """Deletes idle workspaces at start-up and then every `every_s`; several replicas may all run it."""

    def __init__(
        self,
        store: ThreadFiles,
        retention_days: float,
        clock: Callable[[], float] = time.time,
        every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self._store = store
        self._retention_s = retention_days * DAY_S
        self._clock = clock
        self._every_s = every_s

    async def sweep_once(self) -> int:
        """Delete the workspaces last used before the retention cut-off; return how many (0 on error)."""
        try:
            gone = await self._store.sweep_workspaces(self._clock() - self._retention_s)
        except StoreError as exc:  # the next sweep tries again; serving questions matters more
            log.error("could not sweep idle thread workspaces: %s", exc)
            return 0
        if gone:
            log.info("deleted %d thread workspace(s) idle for over %g days", gone, self._retention_s / DAY_S)
        return gone

    async def run_periodically(self) -> None:
        """Sweep every `every_s` until cancelled (the start-up sweep is the caller's `sweep_once`)."""
        while True:
            await asyncio.sleep(self._every_s)
            await self.sweep_once()
