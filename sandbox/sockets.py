"""Find unix sockets under the trees bound into the sandbox (read-only binds still allow connect()).

A world-connectable socket under a bound tree would be a channel out of the sandbox, network namespace or
not. The sandbox masks each one found (a read-only /dev/null bound over it) and says so; `doctor` names
them. The walk is bounded, never follows links, and needs no stat() per file (the directory entry's type
says what is a directory), so the narrowed interpreter trees take a few tens of ms; results are cached
for the process, because every `Sandbox` start asks.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass

MAX_ENTRIES = 500_000  # per scan; a bigger tree is reported as not fully scanned
CACHE_S = 300.0


@dataclass(frozen=True)
class Scan:
    """Sockets found under some trees; `complete` is False when the walk hit its bound."""

    sockets: tuple[str, ...]
    complete: bool
    entries: int


_cache: dict[tuple[str, ...], tuple[float, Scan]] = {}
_lock = threading.Lock()


def scan(trees: tuple[str, ...], max_entries: int = MAX_ENTRIES) -> Scan:
    """Return the sockets under trees (sync: call off the event loop); cached for CACHE_S seconds."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(trees)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
    found: list[str] = []
    entries, complete = 0, True
    for tree in trees:
        got, seen, done = _walk(tree, max_entries - entries)
        found += got
        entries += seen
        complete = complete and done
    result = Scan(tuple(sorted(found)), complete, entries)
    with _lock:
        _cache[trees] = (now, result)
    return result


def _walk(root: str, budget: int) -> tuple[list[str], int, bool]:
    found: list[str] = []
    seen = 0
    if _is_socket(root):
        return [root], 1, True
    stack = [root]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > budget:
                    return found, seen, False
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif not entry.is_file(follow_symlinks=False) and not entry.is_symlink():  # noqa: SIM102
                        if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):  # only odd types
                            found.append(entry.path)
                except OSError:
                    continue
    return found, seen, True


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False
