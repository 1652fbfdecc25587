"""Containment suite, part 1b: secrets (environment, /proc, the bot's files, fds) and the network.

Each test first runs the abuse program unconfined, to prove it would find the secret or reach the
server, then runs it in the sandbox and asserts that nothing comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from sandbox import RunLimits, Sandbox, SandboxConfig, command, doctor, locate

if __package__:  # tests/sandbox is a package
    from . import test_containment as kit
else:  # pytest put this directory on sys.path
    import test_containment as kit

canary, cold, either = kit.canary, kit.cold, kit.either  # shared fixtures, found by name


# ---------------------------------------------------------------- environment and /proc


async def test_environment_and_proc_environ_hold_no_secret(either: Sandbox, canary: str) -> None:
    code = kit.program("env_secrets", bot_pid=os.getpid())
    assert canary in await kit.run_unconfined(either.cfg, code), "control: unconfined, the program finds it"
    result = await kit.run(either, code)
    found = kit.report(result)
    kit.assert_no_secret(result, canary)
    assert os.getpid() not in found["pids"], "the bot's pid is visible inside the sandbox"
    assert found["/proc/self/environ"].startswith("PATH="), "the program's own environ was not read"
    # pid 1 is the non-dumpable supervisor: its environ is refused outright (it would hold only PATH)
    assert found["/proc/1/environ"].startswith(("PATH=", "ERR PermissionError")), found["/proc/1/environ"]
    assert "OPENAI_API_KEY" not in found["environ"] and len(found["environ"]) < 16, found["environ"]
    await kit.assert_run_left_nothing(either)


# ---------------------------------------------------------------- the bot's files


@pytest.fixture
def bot_files(tmp_path: Path, canary: str) -> list[str]:
    """Plant the bot's secrets on the host: a .env and a SQLite database holding the canary."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"# {kit.SECRET_MARKER}\nOPENAI_API_KEY={canary}\n")
    db = tmp_path / "codebot.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("create table secrets (marker text, value text)")
        conn.execute("insert into secrets values (?, ?)", (kit.SECRET_MARKER, canary))
        conn.commit()
    project = Path(__file__).resolve().parents[2]
    return [
        str(env_file),
        str(db),
        str(tmp_path),
        str(project),
        str(project / "pyproject.toml"),
        str(project / ".env"),
        str(Path.home()),
        "/etc/shadow",
    ]


async def test_bot_files_database_and_host_secrets_are_unreachable(
    cold: Sandbox, canary: str, bot_files: list[str]
) -> None:
    control = await kit.run_unconfined(cold.cfg, kit.program("bot_files", paths=bot_files[:2], walk_s=0.2))
    assert canary in control, "control: unconfined, the program reads the .env and the database"
    # The walk is bounded by its own time and file count, far inside the run's timeout, so a loaded
    # machine shortens the walk instead of killing the run (it used to walk for the whole timeout).
    code = kit.program("bot_files", paths=bot_files, marker=kit.SECRET_MARKER, walk_s=1.0, max_files=5000)
    result = await kit.run(cold, code, kit.LIMITS.replace(timeout_s=30.0, cpu_s=30.0))
    found = kit.report(result)
    kit.assert_no_secret(result, canary)
    assert found["marker_hits"] == {}, f"planted secret files are visible: {list(found['marker_hits'])}"
    assert found["files_scanned"] > 0, "the walk did not run"
    readable = {
        p: v[:80]
        for p, v in found["probes"].items()
        if p in bot_files and not v.startswith("ERR") and not _skeleton(p, v, cold.cfg.site_dir)
    }
    assert readable == {}, f"the bot's files are reachable from the sandbox: {readable}"
    try:  # an ordinary user's bot cannot read it either; then there is nothing to compare
        shadow = (await asyncio.to_thread(Path("/etc/shadow").read_text)).split(":", 2)[:2]
    except PermissionError:
        shadow = []
    assert not shadow or ":".join(shadow) not in kit.everything(result), "/etc/shadow leaked"
    await kit.assert_run_left_nothing(cold)


def _skeleton(path: str, probe: str, site_dir: Path) -> bool:
    """Tell whether a listing of path shows only the way down to the bound site dir (bwrap makes those)."""
    try:
        step = site_dir.relative_to(path).parts[0]
    except (ValueError, IndexError):
        return False
    return probe == "DIR " + json.dumps([step])


# ---------------------------------------------------------------- inherited file descriptors


async def test_inherited_file_descriptors_leak_nothing(canary: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{kit.SECRET_MARKER} {canary}\n")
    # The bot leaked an fd: no O_CLOEXEC. Opened before the sandbox starts, so pool slots see it too.
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        async with kit.open_sandbox(pool_size=1) as sb:
            code = kit.program("inherited_fds")
            control = await kit.run_unconfined(sb.cfg, code, pass_fds=(fd,))
            assert canary in control, "control: unconfined, the program reads a passed fd"
            await kit.wait_for_warm(sb)
            warm_run = await kit.run(sb, code)
            cold_run = await kit.run(sb, code, kit.LIMITS.replace(tmp_mb=63))  # a slot never fits this
            for result in (warm_run, cold_run):
                found = kit.report(result)
                kit.assert_no_secret(result, canary)
                links = [e["link"] for e in found["fds"].values()]
                assert str(secret) not in links, f"the secret file's fd reached the sandbox: {found['fds']}"
    finally:
        os.close(fd)


# ---------------------------------------------------------------- network


async def test_network_is_unreachable_including_the_bots_loopback(cold: Sandbox) -> None:
    async with kit.listeners() as net:
        params = {k: v for k, v in net.items() if k != "contacts"}
        control = await kit.run_unconfined(cold.cfg, kit.program("network", **params))
        assert '"tcp4_loopback": "OK' in control, "control: unconfined, the program reaches the server"
        net["contacts"].clear()
        result = await kit.run(cold, kit.program("network", **params))
        found = kit.report(result)
        await asyncio.sleep(0.2)  # let any datagram that did get out arrive
        assert net["contacts"] == [], f"the sandbox reached the test's servers: {net['contacts']}"
    reached = {k: v for k, v in found.items() if k != "interfaces" and not v.startswith("ERR")}
    assert reached == {}, f"network calls succeeded inside the sandbox: {reached}"
    assert set(found["interfaces"]) <= {"lo"}, f"network interfaces inside: {found['interfaces']}"
    await kit.assert_run_left_nothing(cold)


# ---------------------------------------------------------------- unix sockets under bound trees

CONNECT = """
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(PATH)
    print("connected", s.recv(16))
except OSError as e:
    print("ERR", type(e).__name__, e.errno)
"""


async def test_a_unix_socket_under_a_bound_tree_is_masked_and_named(
    cfg: SandboxConfig, caplog: pytest.LogCaptureFixture
) -> None:
    env_dir = Path(tempfile.mkdtemp(prefix="codebot-sockets-"))  # pytest's tmp_path is private to root
    contacts: list[str] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        contacts.append("connection")
        writer.write(b"hello\n")
        writer.close()

    try:
        site = env_dir / "site"  # the sandbox's package directory, bound read-only into every run
        site.mkdir()
        for path in (env_dir, site):
            path.chmod(0o755)
        sock = site / "agent.sock"
        server = await asyncio.start_unix_server(on_conn, str(sock))
        sock.chmod(0o777)  # world-connectable, as a careless agent socket would be
        code = f"PATH = {str(sock)!r}\n" + CONNECT
        try:
            assert "connected" in await kit.run_unconfined(cfg, code), "control: unconfined, it connects"
            contacts.clear()
            bwrap = str(locate.find_bwrap(cfg, locate.identity(cfg)))  # the real one, not env_dir's
            test_cfg = dataclasses.replace(cfg, env_dir=env_dir, bwrap=bwrap)
            with caplog.at_level(logging.WARNING, logger="sandbox.api"):
                async with kit.open_sandbox(pool_size=0, env_dir=env_dir, bwrap=bwrap) as sb:
                    result = await kit.run(sb, code)
            checks = await asyncio.to_thread(doctor.report, test_cfg)
        finally:
            server.close()
            await server.wait_closed()
    finally:
        shutil.rmtree(env_dir, ignore_errors=True)
    assert result.stdout.startswith("ERR"), f"the sandbox connected to a bound socket: {result.to_json()}"
    assert contacts == [], "the socket's server saw a connection from the sandbox"
    assert str(sock) in caplog.text, "the sandbox's start did not name the socket"
    named = [c for c in checks if str(sock) in c.detail]
    # masked in every run, so a warning (doctor still exits 0), naming the path
    assert named and named[0].detail.startswith("WARNING"), (
        f"doctor did not name the socket: {[c.detail for c in checks]}"
    )


def test_a_socket_removed_since_the_scan_does_not_stop_the_sandbox(tmp_path: Path) -> None:
    """bwrap cannot bind over a path that is gone (its tree is read-only): such a mask is dropped."""
    here = tmp_path / "here.sock"
    here.touch()
    gone = str(tmp_path / "gone.sock")
    layout = command.Layout(
        bwrap=Path("/usr/bin/bwrap"),
        python=Path("/usr/bin/python3.11"),
        site_dir=tmp_path,
        fontlist=None,
        supervisor="",
        masked=(str(here), gone),
    )
    argv = command.bwrap_argv(layout, RunLimits(), "", 3)
    assert str(here) in argv and gone not in argv
