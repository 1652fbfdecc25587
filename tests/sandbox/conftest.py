"""Shared fixtures for the sandbox tests: a real config, and helpers that look for stray processes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox import Sandbox, SandboxConfig


@pytest.fixture
def cfg() -> SandboxConfig:
    """The configuration from the environment; skips (saying how to fix it) if setup was never run."""
    config = SandboxConfig.from_env()
    if not config.site_dir.is_dir():
        pytest.skip(f"sandbox environment {config.env_dir} missing: run `python -m sandbox setup` first")
    return config


@pytest.fixture
def open_sandbox(cfg: SandboxConfig) -> Callable[..., Any]:
    """Return a factory: `async with open_sandbox(pool_size=0) as sb` with some config fields changed."""

    def factory(**changes: Any) -> Sandbox:
        return Sandbox(dataclasses.replace(cfg, **changes))

    return factory


@pytest.fixture
async def cold(open_sandbox: Callable[..., Sandbox]) -> AsyncIterator[Sandbox]:
    """A sandbox without a warm pool: every run starts a fresh interpreter."""
    async with open_sandbox(pool_size=0) as sb:
        yield sb


@pytest.fixture
def token() -> str:
    """A unique word to put in a stray process's command line, so tests can find exactly their own."""
    return "codebot-stray-" + secrets.token_hex(8)


def processes_with(word: str) -> list[int]:
    """Return live (non-zombie) host pids whose command line contains word."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if word.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def host_uids(pid: int) -> list[int]:
    """Return the real, effective, saved and fs uids of a host process ([] if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return []
    return [int(u) for u in status.split("Uid:")[1].split()[:4]]


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll predicate until it holds or time runs out (for state only /proc or the pool can show)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # polling: there is no event to await for a /proc scan
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_gone(word: str, timeout_s: float = 5.0) -> list[int]:
    """Wait until no process carries word (the kernel tears a pid namespace down asynchronously)."""
    await eventually(lambda: not processes_with(word), timeout_s)
    return processes_with(word)


def daemon_code(word: str, double_fork: bool = True) -> str:
    """Return code that leaves a sleeping process (double-forked and detached if asked) carrying word."""
    detach = "os.setsid()\n    if os.fork():\n        os._exit(0)\n    " if double_fork else ""
    argv = ["python3", "-c", "import time; time.sleep(60)", word]
    return (
        "import os, time\n"
        "if os.fork() == 0:\n"
        f"    {detach}os.execv('/usr/bin/python3.11', {argv!r})\n"
        "time.sleep(0.3)\n"
        "print('started')\n"
    )


async def wait_pool_ready(sb: Sandbox, count: int, timeout_s: float = 60.0) -> None:
    """Wait until the warm pool holds `count` ready sandboxes."""
    pool = sb.pool
    assert pool is not None, "this sandbox has no warm pool"
    assert await eventually(lambda: pool.ready >= count, timeout_s), "the warm pool never filled"


def expected_isolation() -> str:
    """Return the isolation a run gets on this host: "full" needs a root bot (per-slot uids, per-run
    cgroups); an ordinary user's runs share the bot's uid, so they are "partial" at best (layers.py)."""
    return "full" if os.geteuid() == 0 else "partial"
