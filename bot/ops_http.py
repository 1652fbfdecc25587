"""The operations listener: /healthz (alive), /readyz (can take questions) and /metrics (Prometheus).

It runs beside every serving mode on its own port (CODEBOT_HTTP_HOST, CODEBOT_HTTP_PORT), so Socket
Mode and Discord, which have no inbound HTTP of their own, can be probed and scraped too.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from core.metrics import CONTENT_TYPE
from core.readiness import Ops
from core.settings import ConfigError, Settings

log = logging.getLogger(__name__)


class OpsServer:
    """A small aiohttp server on one socket; `port` is the bound port (useful with port 0 in tests)."""

    def __init__(self, ops: Ops, host: str, port: int) -> None:
        self._ops = ops
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Bind and serve; a port already in use is a ConfigError naming the setting."""
        try:
            sock = socket.create_server((self._host, self._port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on CODEBOT_HTTP_HOST={self._host} CODEBOT_HTTP_PORT={self._port}: "
                f"{exc.strerror or exc}"
            ) from None
        app = web.Application()
        routes = {"/healthz": self._health, "/readyz": self._ready, "/metrics": self._metrics}
        app.add_routes([web.get(path, handler) for path, handler in routes.items()])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        log.info("ops: listening on http://%s:%s (/healthz /readyz /metrics)", self._host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _ready(self, request: web.Request) -> web.Response:
        problems = await self._ops.problems()
        if problems:
            return web.json_response({"ready": False, "reason": "; ".join(problems)}, status=503)
        return web.json_response({"ready": True})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self._ops.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@asynccontextmanager
async def serve_ops(settings: Settings, ops: Ops) -> AsyncIterator[OpsServer | None]:
    """Run the listener for the duration of the block when CODEBOT_HTTP_PORT is set (else nothing)."""
    if not settings.http_port:
        yield None
        return
    server = OpsServer(ops, settings.http_host, settings.http_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
