"""Root mode: bwrap starts as root and the supervisor drops to the slot's uid itself (no setpriv exec).

The switch saves every cold start an exec; these tests hold it to what setpriv gave: no capability in
any set and an ordinary host uid before any code runs, a supervisor that refuses to go on when a power
is left, a sandbox that still dies with its bwrap, and the user-namespace path where no filter exists.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from sandbox import RunLimits, Sandbox, SandboxConfig, api, command, runner, seccomp
from sandbox.locate import Identity

if __package__:
    from . import test_containment as kit
else:
    import test_containment as kit

ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only a root bot starts bwrap as root and drops uid inside; an ordinary user's sandbox uses a "
    "user namespace (covered by the other containment tests)",
)
STATUS_CODE = """
import json
def status(pid):
    rows = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status').read().splitlines() if ':' in l)
    keys = ('Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp')
    return {k: rows[k].split() for k in keys}
print(json.dumps({'code': status('self'), 'supervisor': status(1)}))
"""
NO_CAPS = ["0000000000000000"]


def _layout(**changes: object) -> command.Layout:
    base = command.Layout(
        bwrap=Path("/usr/bin/bwrap"),
        python=Path("/usr/bin/python3.11"),
        site_dir=Path("/opt/site"),
        fontlist=None,
        supervisor="pass",
        ro_binds=("/usr/bin", "/usr/lib/python3.11"),
    )
    return dataclasses.replace(base, **changes)


def test_root_with_a_filter_starts_bwrap_itself_and_the_supervisor_drops_to_the_uid() -> None:
    layout = _layout()
    env = runner.Env(layout, Identity(0, 0, False), False, "full", 0, setpriv=Path("/usr/bin/setpriv"))
    ident = Identity(62005, 62005, drop=True)
    argv, _, _, user = runner._command(env, ident, None, RunLimits(), "", 3, 4, None)
    assert argv[0] == "/usr/bin/bwrap" and user is None, argv  # no setpriv exec, vfork spawn
    assert argv[-2:] == ["62005", "62005"], "the supervisor is told which uid to become"
    assert "--unshare-user" not in argv and "--disable-userns" not in argv
    kept = {argv[i + 1] for i, a in enumerate(argv) if a == "--cap-add"}
    assert kept == {"CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"}, kept
    # bwrap makes a bind's missing parents 0700: root-made parents must be crossable by the uid
    assert argv[argv.index("/usr") - 3 : argv.index("/usr") + 1] == ["--perms", "0755", "--dir", "/usr"]
    writable = []
    for i in (i for i, a in enumerate(argv) if argv[i : i + 2] == ["--perms", "1777"]):
        made = next(j for j in range(i + 2, len(argv)) if argv[j] in ("--tmpfs", "--dir"))
        writable.append(argv[made + 1])
    assert writable == ["/tmp", "/dev/shm", "/tmp/mpl", "/tmp/out"], writable


def test_without_a_filter_root_keeps_setpriv_and_the_user_namespace() -> None:
    """--disable-userns needs the user namespace; without the filter nothing else would stop a new one."""
    env = runner.Env(_layout(), Identity(0, 0, False), False, "full", 0, setpriv=Path("/usr/bin/setpriv"))
    argv, _, _, user = runner._command(
        env, Identity(62005, 62005, True), None, RunLimits(), "", 3, None, None
    )
    assert argv[:4] == ["/usr/bin/setpriv", "--reuid=62005", "--regid=62005", "--clear-groups"], argv
    assert "--unshare-user" in argv and "--disable-userns" in argv and user is None
    assert "--cap-add" not in argv and argv[-1] == "3"


def test_an_ordinary_user_never_switches() -> None:
    env = runner.Env(_layout(), Identity(1000, 1000, False), False, "full", 0)
    argv, _, _, user = runner._command(env, Identity(1000, 1000, False), None, RunLimits(), "", 3, 4, None)
    assert argv[0] == "/usr/bin/bwrap" and "--unshare-user" in argv and "--cap-add" not in argv
    assert user is None and argv[-1] == "3"


def _status(stdout: str) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = json.loads(stdout)
    return found


@ROOT_ONLY
async def test_after_the_switch_no_process_of_the_run_holds_any_privilege(cfg: SandboxConfig) -> None:
    async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
        result = await kit.run(sb, STATUS_CODE)
    assert result.ok, result.to_json()
    found = _status(result.stdout)
    for who, status in found.items():
        uid = int(status["Uid"][0])
        assert uid in kit.sandbox_uid(cfg) and status["Uid"] == [str(uid)] * 4, (who, status)
        assert status["Gid"] == [str(uid)] * 4 and status["Groups"] == [], (who, status)
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert status[key] == NO_CAPS, (who, key, status)
        assert status["NoNewPrivs"] == ["1"] and status["Seccomp"] == ["2"], (who, status)


@ROOT_ONLY
def test_a_supervisor_left_with_a_capability_refuses_to_start(cfg: SandboxConfig) -> None:
    """Without CAP_SETPCAP the bounding set cannot be dropped: the supervisor must stop, not go on."""
    env = api.resolve_env(dataclasses.replace(cfg, pool_size=0), False)
    assert env.layout.seccomp is not None and env.layout.bwrap is not None
    filter_fd = runner._seccomp_pipe(env.layout.seccomp)
    report_r, report_w = os.pipe()
    try:
        layout = dataclasses.replace(env.layout, supervisor_code=None)
        switch = (env.uids[0], env.uids[0]) if env.uids else (env.ident.uid, env.ident.gid)
        argv = command.bwrap_argv(layout, cfg.default_limits, "", report_w, filter_fd, None, switch)
        at = argv.index("CAP_SETPCAP")
        del argv[at - 1 : at + 1]
        done = subprocess.run(
            argv,
            capture_output=True,
            env=command.BWRAP_ENV,
            pass_fds=(report_w, filter_fd),
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        os.close(report_w)
        report_w = -1
        said = os.read(report_r, 100)
    finally:
        for fd in (filter_fd, report_r, report_w):
            if fd >= 0:
                os.close(fd)
    assert done.returncode == 70, (done.returncode, done.stderr[-500:])
    assert b"left privileges" in done.stderr and said == b"", (said, done.stderr[-500:])


@ROOT_ONLY
async def test_a_bwrap_killed_by_anyone_takes_the_switched_supervisor_with_it(cfg: SandboxConfig) -> None:
    """The uid switch clears the parent-death signal; the supervisor re-arms it (no cgroup to help here)."""
    limits = RunLimits(timeout_s=30.0, cpu_s=30.0)
    async with Sandbox(dataclasses.replace(cfg, pool_size=0, cgroup="off")) as sb:
        task = asyncio.ensure_future(sb.run("import time; time.sleep(25)", limits))
        try:
            outer = None
            for _ in range(500):  # bounded: up to ~10 s on a loaded machine
                await asyncio.sleep(0.02)
                tree = await asyncio.to_thread(lambda: kit.descendants(kit.process_table()))
                pythons = [pid for pid, row in tree.items() if row[3].startswith("python")]
                # the run's bwrap, the supervisor's parent (not a bwrap parked for the next run)
                parents = {row[0] for row in tree.values() if row[3].startswith("python")}
                bwraps = [pid for pid, row in tree.items() if row[3] == "bwrap" and pid in parents]
                if len(pythons) >= 2 and bwraps:  # the supervisor and the code's process
                    outer = bwraps[0]
                    break
            assert outer is not None, "the run never started"
            os.kill(outer, signal.SIGKILL)  # not the host's kill: only the parent-death signal remains
            result = await asyncio.wait_for(task, 20)
        finally:
            if not task.done():
                task.cancel()
        assert not result.ok and result.duration_ms < 20_000, result.to_json()
        await kit.assert_no_strays(kit.sandbox_uid(cfg), wait_s=5.0)


@ROOT_ONLY
async def test_where_no_filter_exists_root_runs_use_the_user_namespace(
    cfg: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seccomp, "supported", lambda machine=None: False)
    async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
        assert sb.layers["seccomp"] is False, sb.layers
        result = await kit.run(sb, STATUS_CODE)
    assert result.ok, result.to_json()
    code = _status(result.stdout)["code"]
    assert code["Uid"] == ["65534"] * 4, code  # mapped inside the user namespace
    assert code["CapEff"] == code["CapBnd"] == NO_CAPS and code["NoNewPrivs"] == ["1"], code
