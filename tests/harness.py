"""A whole core (real store, real sandbox or a scripted one, real LLM client) pointed at a fake LLM."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.wiring import open_core
from core.agent import Runner
from core.service import Codebot
from core.settings import Settings


def stack_environ(tmp_path: Path, llm_base_url: str, **overrides: str) -> dict[str, str]:
    """Environment for a test core; names as in .env.example."""
    env = {k: v for k, v in os.environ.items() if k.startswith("CODEBOT_SANDBOX_")}
    env.update(
        {
            "CODEBOT_DB": str(tmp_path / "codebot.db"),
            "OPENAI_BASE_URL": llm_base_url,
            "OPENAI_API_KEY": "sk-test-not-a-real-key",
            "CODEBOT_MODEL": "openai/test-model",
            "CODEBOT_LLM_RETRIES": "1",
            "CODEBOT_LLM_TIMEOUT_S": "10",
            "CODEBOT_SHUTDOWN_GRACE_S": "5",
        }
    )
    env.update(overrides)
    return env


@asynccontextmanager
async def core_stack(
    tmp_path: Path, llm_base_url: str, *, pool_size: int = 0, runner: Runner | None = None, **overrides: str
) -> AsyncIterator[Codebot]:
    """Yield a running Codebot; settings overrides use the env names (CODEBOT_ADMIN_IDS=...).

    `runner` (a tests.fake_runner.FakeRunner) stands in for the sandbox in tests of the core's logic.
    """
    environ = stack_environ(
        tmp_path, llm_base_url, **{"CODEBOT_SANDBOX_POOL_SIZE": str(pool_size), **overrides}
    )
    settings = Settings(_env_file=None, **environ)  # type: ignore[call-arg]
    async with open_core(settings, runner=runner) as core:
        yield core


async def until(pred: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll a condition no event announces (processes under /proc, states a sink records)."""
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")
