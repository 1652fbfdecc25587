"""One unprivileged host uid per concurrent sandbox slot (root mode), as isolate does.

Runs that share a uid share its per-user kernel quotas: inotify instances, pipe buffer pages,
RLIMIT_NPROC, and anything else running as that user (`nobody`) counts too. So each slot (a warm
sandbox or a running one) takes a uid of its own from a configured range that nothing else uses (no
passwd entry, no process), and a uid goes back into use only once every process of its last run is gone.
Free uids are reused oldest-first, so a uid rests as long as the range allows.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import grp
import os
import pwd

ACQUIRE_TIMEOUT_S = 30.0  # every slot is destroyed within seconds; a longer wait means a leak


def parse_range(text: str) -> tuple[int, int]:
    """Parse "FIRST-LAST" (inclusive); ValueError says what is wrong."""
    first, sep, last = text.partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise ValueError(f"a uid range looks like 62000-62031, got {text!r}")
    lo, hi = int(first), int(last)
    if not 1000 <= lo <= hi < 2**31 - 1 or hi - lo > 65535:
        raise ValueError(f"uid range {text!r} must be ascending, above 999 and at most 65536 uids")
    return lo, hi


def uids_with_processes(uids: set[int]) -> set[int]:
    """Return which of uids own a live (non-zombie) process, by real or effective uid (one /proc scan)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                text = f.read(2048)
        except OSError:
            continue
        state = text.partition("State:")[2].split()[:1]
        ids = text.partition("Uid:")[2].split()[:2]
        if state == ["Z"] or len(ids) < 2:
            continue
        found |= uids & {int(ids[0]), int(ids[1])}
    return found


def conflicts(lo: int, hi: int) -> dict[int, str]:
    """Return the uids of the range that something else uses, with what (for doctor and start-up)."""
    found: dict[int, str] = {}
    for uid in range(lo, hi + 1):  # gid = uid, so a group entry conflicts too
        with contextlib.suppress(KeyError):
            found[uid] = f"group entry {grp.getgrgid(uid).gr_name!r}"
        with contextlib.suppress(KeyError):
            found[uid] = f"passwd entry {pwd.getpwuid(uid).pw_name!r}"
    for uid in uids_with_processes(set(range(lo, hi + 1)) - set(found)):
        found[uid] = "a running process"
    return found


class UidPool:
    """Hands out uids from a range; a returned uid is reused only once its processes are all gone."""

    def __init__(self, uids: list[int]) -> None:
        self._free: collections.deque[int] = collections.deque(uids)
        self._resting: set[int] = set()  # returned, but a process of theirs was still alive
        self._size = len(uids)
        self._returned = asyncio.Event()

    @property
    def size(self) -> int:
        return self._size

    @property
    def free(self) -> int:
        return len(self._free)

    async def acquire(self) -> int:
        """Return a free uid, waiting (bounded) for one to come back; TimeoutError if none does."""
        async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
            while not self._free:
                if self._resting:
                    await self._recheck()
                if self._free:
                    break
                self._returned.clear()
                # a release sets the event; resting uids are re-checked every 50 ms meanwhile
                waiter = asyncio.ensure_future(self._returned.wait())
                try:
                    await asyncio.wait({waiter}, timeout=0.05)
                finally:
                    waiter.cancel()
        return self._free.popleft()

    async def release(self, uid: int) -> None:
        """Give a uid back once the run that used it is destroyed."""
        self._resting.add(uid)
        await self._recheck()

    async def _recheck(self) -> None:
        resting = set(self._resting)
        busy = await asyncio.to_thread(uids_with_processes, resting)
        for uid in resting - busy:
            if uid in self._resting:
                self._resting.discard(uid)
                self._free.append(uid)
        if len(self._free):
            self._returned.set()
