"""Fixtures for the operations tests: a real core with its Ops, served by the real listener on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops_http import OpsServer
from bot.wiring import open_core
from core.readiness import Ops
from core.service import Codebot
from core.settings import Settings
from core.types import Author, Incoming, ThreadKey
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import stack_environ


@dataclass
class OpsStack:
    core: Codebot
    ops: Ops
    server: OpsServer
    http: aiohttp.ClientSession
    llm: FakeOpenAI
    db: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.url(path)) as resp:
            return resp.status, await resp.text()

    async def sample(self, name: str, **labels: str) -> float:
        """One sample's value from a real scrape of /metrics (0 when the series does not exist yet)."""
        status, text = await self.get("/metrics")
        assert status == 200
        return sample_value(text, name, labels)


def sample_value(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def incoming(text: str, thread: str = "1700.1", event: str = "Ev1", user: str = "U77") -> Incoming:
    key = ThreadKey("slack", "T9", "C9", thread)
    return Incoming(key, Author(user, "Ada"), text, event_id=event)


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def open_stack(tmp_path: Path, llm: FakeOpenAI, **overrides: str) -> AsyncIterator[OpsStack]:
    environ = stack_environ(tmp_path, llm.base_url, **{"CODEBOT_SANDBOX_POOL_SIZE": "0", **overrides})
    settings = Settings(_env_file=None, **environ)  # type: ignore[call-arg]
    ops = Ops()
    server = OpsServer(ops, "127.0.0.1", 0)  # port 0: the kernel picks a free one; the CLI never does
    await server.start()
    try:
        async with (
            open_core(settings, ops=ops) as core,
            aiohttp.ClientSession() as http,
        ):
            yield OpsStack(core, ops, server, http, llm, tmp_path / "codebot.db")
    finally:
        await server.stop()


@pytest.fixture
async def stack(tmp_path: Path, llm: FakeOpenAI) -> AsyncIterator[OpsStack]:
    async for s in open_stack(tmp_path, llm, CODEBOT_DB_BUSY_TIMEOUT_S="0.2"):
        yield s
