"""Run a `codebot` serving process with the operations listener on, against the fakes on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.ops.conftest import sample_value

_OPS_LISTENING = re.compile(r"ops: listening on http://[^:]+:(\d+)")
PORT_TAKEN = "cannot listen on"


def free_port() -> int:
    """A port that was free a moment ago; start_ops_bot retries if another process takes it first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OpsBot:
    """A running bot process; stderr is drained into `log` so the pipe never fills."""

    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    ops_port: int = 0
    _drain: asyncio.Task[None] | None = None

    async def get(self, http: aiohttp.ClientSession, path: str) -> tuple[int, str]:
        async with http.get(f"http://127.0.0.1:{self.ops_port}{path}") as resp:
            return resp.status, await resp.text()

    async def wait_status(self, http: aiohttp.ClientSession, path: str, status: int, timeout_s: float) -> str:
        """Poll until `path` answers `status` (the process is starting or stopping); return the body."""
        async with asyncio.timeout(timeout_s):
            while True:
                got, body = await self.get(http, path)
                if got == status:
                    return body
                await asyncio.sleep(0.05)

    async def wait_sample(
        self, http: aiohttp.ClientSession, name: str, labels: dict[str, str], value: float, timeout_s: float
    ) -> str:
        """Poll /metrics until a sample reaches `value` (a turn is counted when it ends); return the text."""
        async with asyncio.timeout(timeout_s):
            while True:
                _, text = await self.get(http, "/metrics")
                if sample_value(text, name, labels) >= value:
                    return text
                await asyncio.sleep(0.05)

    async def wait(self, timeout_s: float) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        if self._drain is not None:
            await self._drain
        return code

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.wait(30)

    async def _read(self, listening: asyncio.Future[int]) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            if (m := _OPS_LISTENING.search(line)) and not listening.done():
                listening.set_result(int(m.group(1)))
        if not listening.done():
            listening.set_exception(
                ProcessLookupError("the bot exited before listening:\n" + "".join(self.log))
            )


async def start_ops_bot(args: list[str], env: dict[str, str], cwd: Path, tries: int = 5) -> OpsBot:
    """Start `codebot ARGS` with CODEBOT_HTTP_PORT set and wait until the ops listener is up."""
    for _ in range(tries):
        bot = await _start(args, {**env, "CODEBOT_HTTP_PORT": str(free_port())}, cwd)
        if bot is not None:
            return bot
    raise AssertionError(f"no free port for the ops listener in {tries} tries")


async def _start(args: list[str], env: dict[str, str], cwd: Path) -> OpsBot | None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        cwd=cwd, env=env,
    )  # fmt: skip
    bot = OpsBot(proc)
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    bot._drain = asyncio.create_task(bot._read(listening))
    try:
        bot.ops_port = await asyncio.wait_for(listening, 60)
    except ProcessLookupError:
        await bot.kill()
        if any(PORT_TAKEN in line for line in bot.log):
            return None  # taken between free_port() and the bind: try another
        raise AssertionError("".join(bot.log)) from None
    except BaseException:
        await bot.kill()
        raise
    return bot
