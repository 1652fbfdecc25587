"""Run `codebot slack --http` as a real process against the fake Slack and fake LLM on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.process_env import process_env
from tests.slack.payloads import SECRET, dumps, sign

_LISTENING = re.compile(r"listening on http://[^:]+:(\d+)/slack/events")


def bot_environ(tmp_path: Path, slack_api_url: str, llm_base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bot process: test tokens, loopback fakes, a database under tmp_path."""
    defaults = {
        "OPENAI_BASE_URL": llm_base_url,
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "CODEBOT_MODEL": "openai/test-model",
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_api_url,
    }
    return process_env(tmp_path, **{**defaults, **extra})  # a test's own values win


@dataclass
class BotProcess:
    """A running bot; stderr is drained into `log` so the pipe never fills."""

    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    port: int = 0
    _drain: asyncio.Task[None] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def send(self, http: aiohttp.ClientSession, body: dict) -> int:
        """POST a signed event; return the HTTP status."""
        raw = dumps(body)
        async with http.post(
            self.events_url, data=raw, headers={"Content-Type": "application/json", **sign(raw)}
        ) as resp:
            return resp.status

    async def health(self, http: aiohttp.ClientSession) -> int:
        async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
            return resp.status

    async def wait(self, timeout_s: float) -> int:
        """Wait for the process to exit; return its exit code."""
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        if self._drain is not None:
            await self._drain
        return code

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.wait(30)

    async def _read(self, started: asyncio.Future[int]) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            if (m := _LISTENING.search(line)) and not started.done():
                started.set_result(int(m.group(1)))
        if not started.done():
            started.set_exception(AssertionError("the bot exited before listening:\n" + "".join(self.log)))


async def start_bot(env: dict[str, str], cwd: Path, timeout_s: float = 30) -> BotProcess:
    """Start the bot on an ephemeral port and wait until it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "slack", "--http", "--host", "127.0.0.1", "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        cwd=cwd, env=env,
    )  # fmt: skip
    bot = BotProcess(proc)
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    bot._drain = asyncio.create_task(bot._read(started))
    try:
        bot.port = await asyncio.wait_for(started, timeout_s)
    except BaseException:
        await bot.kill()
        raise
    return bot
