"""/healthz, /readyz and /metrics of a real core, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import pytest

from bot.ops_http import OpsServer
from core.readiness import Ops
from core.settings import ConfigError
from tests.ops.conftest import OpsStack, incoming
from tests.recording_sink import RecordingSink


async def test_alive_and_ready_when_the_core_is_up(stack: OpsStack):
    assert await stack.get("/healthz") == (200, '{"ok": true}')
    status, body = await stack.get("/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True})
    assert await stack.sample("codebot_ready") == 1


async def test_not_ready_before_the_core_is_open():
    ops = Ops()
    server = OpsServer(ops, "127.0.0.1", 0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/readyz") as resp:
                assert resp.status == 503
                assert await resp.json() == {"ready": False, "reason": "starting"}
            async with http.get(f"http://127.0.0.1:{server.port}/healthz") as resp:
                assert resp.status == 200  # alive: a liveness probe must not restart a starting bot
    finally:
        await server.stop()


async def test_not_ready_while_the_database_is_locked_then_ready_again(stack: OpsStack):
    other = sqlite3.connect(stack.db, isolation_level=None)  # another process holding the write lock
    try:
        other.execute("BEGIN IMMEDIATE")
        status, body = await stack.get("/readyz")
        assert status == 503
        reason = json.loads(body)["reason"]
        assert reason.startswith("store: ") and "lock" in reason
        assert await stack.sample("codebot_ready") == 0
    finally:
        other.rollback()
        other.close()
    assert (await stack.get("/readyz"))[0] == 200


async def test_not_ready_once_shutting_down(stack: OpsStack):
    stack.llm.enqueue_delay(1.0)
    stack.llm.enqueue_text("finished anyway")
    sink = RecordingSink()
    assert (await stack.core.submit(incoming("slow one"), sink)).accepted
    await stack.llm.wait_for_requests(1, timeout=30)
    stopping = asyncio.create_task(stack.core.shutdown(grace_s=30))
    try:
        status, body = await stack.get("/readyz")  # a running turn keeps the process in its grace period
        assert (status, json.loads(body)) == (503, {"ready": False, "reason": "shutting down"})
        assert (await stack.get("/healthz"))[0] == 200
    finally:
        await stopping
    assert sink.answers == ["finished anyway"]


async def test_a_port_in_use_is_a_configuration_error_naming_the_setting():
    first = OpsServer(Ops(), "127.0.0.1", 0)
    await first.start()
    try:
        second = OpsServer(Ops(), "127.0.0.1", first.port or 0)
        with pytest.raises(ConfigError, match="CODEBOT_HTTP_PORT"):
            await second.start()
    finally:
        await first.stop()
