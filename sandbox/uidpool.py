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
import fcntl
import grp
import os
import pwd
import stat
from pathlib import Path

LOCK_DIR = Path("/run/codebot-sandbox-uids")
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


def conflicts(lo: int, hi: int, locks: Path | None = None) -> dict[int, str]:
    """Return the uids of the range that something else uses, with what (for doctor and start-up).

    A process of a uid whose lock another codebot holds is that bot's sandbox, not a conflict.
    """
    found: dict[int, str] = {}
    for uid in range(lo, hi + 1):  # gid = uid, so a group entry conflicts too
        with contextlib.suppress(KeyError):
            found[uid] = f"group entry {grp.getgrgid(uid).gr_name!r}"
        with contextlib.suppress(KeyError):
            found[uid] = f"passwd entry {pwd.getpwuid(uid).pw_name!r}"
    for uid in uids_with_processes(set(range(lo, hi + 1)) - set(found)):
        if not held_elsewhere(uid, locks):
            found[uid] = "a running process"
    return found


class UidPool:
    """Hands out uids from a range; a returned uid is reused only once its processes are all gone.

    Every uid in use is also held by an flock on LOCK_DIR/<uid>.lock, so two Sandbox instances (in one
    process or in two bots on one host) never hand out the same uid; the kernel drops the locks of a
    bot that dies.
    """

    def __init__(self, uids: list[int], lock_dir: Path | None = LOCK_DIR) -> None:
        self._free: collections.deque[int] = collections.deque(uids)
        self._resting: set[int] = set()  # returned, but a process of theirs was still alive
        self._locks: dict[int, int] = {}  # uid -> fd holding its lock
        self._size = len(uids)
        self._returned = asyncio.Event()
        self._lock_dir = lock_dir

    @property
    def size(self) -> int:
        return self._size

    @property
    def free(self) -> int:
        return len(self._free)

    async def acquire(self) -> int:
        """Return a free uid, waiting (bounded) for one to come back; TimeoutError if none does."""
        async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
            while (uid := self._take()) is None:
                if self._resting:
                    await self._recheck()
                    continue
                self._returned.clear()
                # a release sets the event; uids locked by another bot are retried every 50 ms meanwhile
                waiter = asyncio.ensure_future(self._returned.wait())
                try:
                    await asyncio.wait({waiter}, timeout=0.05)
                finally:
                    waiter.cancel()
        return uid

    async def release(self, uid: int, gone: bool = False) -> None:
        """Give a uid back once its run is destroyed; `gone`: its cgroup proved every process ended."""
        if gone:
            self._give_back(uid)
            return
        self._resting.add(uid)
        await self._recheck()

    def _take(self) -> int | None:
        for _ in range(len(self._free)):
            uid = self._free.popleft()
            if self._lock(uid):
                return uid
            self._free.append(uid)  # another Sandbox on this host uses it now
        return None

    def _lock(self, uid: int) -> bool:
        if self._lock_dir is None:
            return True
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self._lock_dir / f"{uid}.lock", flags, 0o600)
        except OSError:  # the directory vanished: keep serving runs, uncoordinated
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a few us on /run's tmpfs
        except OSError:
            os.close(fd)
            return False
        self._locks[uid] = fd
        return True

    def _give_back(self, uid: int) -> None:
        fd = self._locks.pop(uid, None)
        if fd is not None:
            os.close(fd)  # drops the flock
        self._free.append(uid)
        self._returned.set()

    async def _recheck(self) -> None:
        resting = set(self._resting)
        busy = await asyncio.to_thread(uids_with_processes, resting)
        for uid in resting - busy:
            if uid in self._resting:
                self._resting.discard(uid)
                self._give_back(uid)


def lock_dir() -> Path | None:
    """Create (root only) and return the directory of the uid locks; None if it is not safe to use."""
    try:
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(LOCK_DIR)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None  # someone else's directory, or a symlink: its locks would mean nothing
    return LOCK_DIR


def held_elsewhere(uid: int, where: Path | None) -> bool:
    """Tell whether another codebot holds uid's lock (its sandbox, not a foreign process)."""
    if where is None:
        return False
    try:
        fd = os.open(where / f"{uid}.lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
