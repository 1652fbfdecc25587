"""Real bot replicas and a real HAProxy for the w15b scale tests, each in its own process group.

Every process is started in a new session so a finaliser can kill it together with anything it
spawned (os.killpg), and nothing outlives a failing test.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.ops.process import PORT_TAKEN, free_port
from tests.slack.payloads import dumps, sign

REPO = Path(__file__).resolve().parents[2]
DEPLOY_HAPROXY = REPO / "deploy" / "haproxy.cfg"
_EVENTS = re.compile(r"listening on http://[^:]+:(\d+)/slack/events")
_OPS = re.compile(r"ops: listening on http://[^:]+:(\d+)")


@dataclass
class Proc:
    """A child process whose stderr is drained into `log` (the pipe never fills)."""

    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _drain: asyncio.Task[None] | None = None

    def text(self) -> str:
        return "".join(self.log)

    async def kill(self) -> None:
        """Kill the whole process group and reap the process; safe to call twice."""
        if self.proc.returncode is None:  # once reaped, its id may belong to someone else's group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 30)
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)


async def spawn(
    argv: list[str], env: dict[str, str], cwd: Path, patterns: dict[str, re.Pattern[str]], timeout_s: float
) -> Proc:
    """Start argv in a new session; wait until stderr shows every pattern (a port each)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
    )  # fmt: skip
    child = Proc(proc)
    seen = asyncio.Event()

    async def read() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            child.log.append(line)
            for name, rx in patterns.items():
                if name not in child.ports and (m := rx.search(line)):
                    child.ports[name] = int(m.group(1))
            if len(child.ports) == len(patterns):
                seen.set()
        seen.set()  # it exited: the waiter sees the ports missing

    child._drain = asyncio.create_task(read())
    try:
        await asyncio.wait_for(seen.wait(), timeout_s)
    except BaseException:
        await child.kill()
        raise
    if len(child.ports) != len(patterns):
        await child.kill()
        raise ProcessLookupError(child.text())
    return child


async def start_slack_replica(env: dict[str, str], cwd: Path, tries: int = 5) -> Proc:
    """`codebot slack --http` on an ephemeral events port, with the ops listener on a free port."""
    argv = [sys.executable, "-m", "bot", "slack", "--http", "--host", "127.0.0.1", "--port", "0"]
    for _ in range(tries):
        try:
            return await spawn(
                argv, {**env, "CODEBOT_HTTP_PORT": str(free_port())}, cwd,
                {"events": _EVENTS, "ops": _OPS}, timeout_s=90,
            )  # fmt: skip
        except ProcessLookupError as exc:
            if PORT_TAKEN not in str(exc):
                raise AssertionError(f"the replica did not start:\n{exc}") from None
    raise AssertionError(f"no free ops port in {tries} tries")


# ---- HAProxy --------------------------------------------------------------------------------------

# Directives of deploy/haproxy.cfg that need root's files or a daemon: the test runs HAProxy in the
# foreground on loopback with a stats socket of its own, everything else as the operator gets it.
_DROP = re.compile(r"^\s*(log /dev/log|chroot|stats socket|user|group|daemon|bind|server)\b")


def haproxy_config(
    template: str, bind_port: int, servers: list[tuple[str, int, int]], stats_socket: Path
) -> str:
    """deploy/haproxy.cfg with loopback bind and servers (name, events port, ops port) put in.

    It also names the answering server in an `X-Served-By` response header, so the test can see
    that round robin spread the deliveries over both replicas.
    """
    out: list[str] = []
    for line in template.splitlines():
        if _DROP.match(line):
            continue
        out.append(line)
        stripped = line.strip()
        if stripped == "global":
            out.append(f"    stats socket {stats_socket} mode 600 level admin")
            out.append("    log stderr format raw local0")  # the access log, into the test's output
        elif stripped.startswith("frontend "):
            out.append(f"    bind 127.0.0.1:{bind_port}")
            out.append("    http-response set-header X-Served-By %[srv_name]")
    out += [f"    server {name} 127.0.0.1:{ev} check port {ops}" for name, ev, ops in servers]
    return "\n".join(out) + "\n"


def haproxy_binary() -> str:
    """The haproxy executable; skip outside CI when it is missing, fail in CI (never skip silently)."""
    path = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail("haproxy is not installed in CI: .ci/run must install it (apt-get install haproxy)")
    pytest.skip("the HAProxy test needs haproxy (apt-get install haproxy)")


async def start_haproxy(binary: str, config: Path, cwd: Path) -> Proc:
    """Run HAProxy in the foreground (-db) until killed; config errors fail the test with its output."""
    check = await asyncio.create_subprocess_exec(
        binary, "-c", "-f", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(check.communicate(), 60)
    assert check.returncode == 0, out.decode(errors="replace")
    proc = await asyncio.create_subprocess_exec(
        binary, "-db", "-f", str(config), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=cwd, start_new_session=True,
    )  # fmt: skip
    child = Proc(proc)

    async def read() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            child.log.append(raw.decode(errors="replace"))

    child._drain = asyncio.create_task(read())
    return child


async def serve_haproxy(
    binary: str, servers: list[tuple[str, int, int]], where: Path, tries: int = 5
) -> tuple[Proc, int]:
    """Run deploy/haproxy.cfg for these servers on a free port; return HAProxy and its port.

    Another process may take the port between free_port() and HAProxy's bind: then try another.
    HAProxy binds every listener before it opens its admin socket, so an answering socket means
    it is serving.
    """
    stats = where / "haproxy.sock"
    for _ in range(tries):
        port = free_port()
        config = where / "haproxy.cfg"
        config.write_text(haproxy_config(DEPLOY_HAPROXY.read_text(), port, servers, stats))
        proxy = await start_haproxy(binary, config, where)
        try:
            async with asyncio.timeout(60):
                while proxy.proc.returncode is None:
                    with contextlib.suppress(OSError):
                        await admin(stats, "show info")
                        return proxy, port
                    await asyncio.sleep(0.05)
        except BaseException:
            await proxy.kill()
            raise
        await proxy.kill()
        if "cannot bind" not in proxy.text():
            raise AssertionError(f"haproxy exited:\n{proxy.text()}")
    raise AssertionError(f"no free port for haproxy in {tries} tries")


async def admin(stats_socket: Path, command: str) -> str:
    """Run one command on HAProxy's admin socket (it answers and closes); return the answer."""
    reader, writer = await asyncio.open_unix_connection(str(stats_socket))
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return raw.decode()


async def server_stats(stats_socket: Path) -> dict[str, dict[str, str]]:
    """`show stat`: server name -> its row (status, check_status, wretr, wredis, ...)."""
    rows = csv.DictReader(io.StringIO((await admin(stats_socket, "show stat")).lstrip("# ")))
    return {r["svname"]: r for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")}


async def wait_servers_up(proxy: Proc, stats_socket: Path, names: list[str], timeout_s: float) -> None:
    """Until HAProxy's own health check (GET /readyz) has passed for every server."""
    last: dict[str, tuple[str, str]] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                with contextlib.suppress(OSError):  # the socket appears once HAProxy has started
                    rows = await server_stats(stats_socket)
                    last = {n: (r["status"], r["check_status"]) for n, r in rows.items()}
                if all(last.get(n, ("", ""))[0] == "UP" and last[n][1] == "L7OK" for n in names):
                    return
                assert proxy.proc.returncode is None, proxy.text()
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"servers not up: {last}\n{proxy.text()}") from None


async def post_event(
    http: aiohttp.ClientSession, url: str, body: dict, retry: int = 0
) -> tuple[int, str, float]:
    """POST a signed event as Slack does (retries carry X-Slack-Retry-Num); status, server, seconds."""
    raw = dumps(body)
    headers = {"Content-Type": "application/json", **sign(raw)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.post(url, data=raw, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Served-By", ""), loop.time() - started
