"""Containment suite, part 5: the bot run as an ordinary user (the common deployment, no root at all).

Limits that need no root must hold there too. As root the test starts the bot as an ordinary user
(`nobody`, through setpriv) with the sandbox's world-readable interpreter; as an ordinary user it starts
the bot as itself. The host's own measurements (free disk) are taken while the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import RunLimits, SandboxConfig

if __package__:  # tests/sandbox is a package
    from . import test_containment as kit
else:  # pytest put this directory on sys.path
    import test_containment as kit

PROJECT = Path(__file__).resolve().parents[2]
ORDINARY_UID = 65534  # nobody: when the tests run as root, the bot is started as this user
HELPER = """
import asyncio, dataclasses, json, sys
from sandbox import RunLimits, Sandbox, SandboxConfig
async def main():
    cfg = dataclasses.replace(SandboxConfig.from_env(), pool_size=0)
    async with Sandbox(cfg) as sb:
        result = await sb.run(open(sys.argv[1]).read(), RunLimits(**json.loads(sys.argv[2])))
    print(json.dumps(result.to_json()))
asyncio.run(main())
"""


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory the ordinary user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="codebot-unpriv-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _bot_argv(cfg: SandboxConfig) -> list[str]:
    """Return the command that starts a bot process as an ordinary user."""
    if os.geteuid() != 0:
        return [str(cfg.python)]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to start the bot as an ordinary user")
    ids = [f"--reuid={ORDINARY_UID}", f"--regid={ORDINARY_UID}", "--clear-groups"]
    return [setpriv, *ids, str(cfg.python)]


def _readable_copy(where: Path) -> Path:
    """Copy the sandbox package where the ordinary user can read it (the checkout may be private)."""
    src = where / "src"
    shutil.copytree(PROJECT / "sandbox", src / "sandbox", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [src, *src.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return src


def _free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


async def run_as_ordinary_user(
    cfg: SandboxConfig, where: Path, code: str, limits: RunLimits
) -> tuple[dict[str, Any], int]:
    """Run code through a bot that is an ordinary user; return its result and the host disk it took."""
    job = where / "job.py"
    job.write_text(code)
    job.chmod(0o644)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(_readable_copy(where)),
        "HOME": str(where),
        "CODEBOT_SANDBOX_ENV_DIR": str(cfg.env_dir),
        "CODEBOT_SANDBOX_PYTHON": str(cfg.python),
    }
    fields = {k: getattr(limits, k) for k in ("timeout_s", "cpu_s", "output_dir_mb", "tmp_mb")}
    argv = [*_bot_argv(cfg), "-c", HELPER, str(job), json.dumps(fields)]
    host = tempfile.gettempdir()  # where a run's host directory used to live
    before = lowest = _free_bytes(host)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env, cwd=where
    )
    try:
        out = asyncio.ensure_future(proc.communicate())
        async with asyncio.timeout(limits.timeout_s + 60):
            while not out.done():
                lowest = min(lowest, _free_bytes(host))
                await asyncio.wait({out}, timeout=0.02)
        stdout, _ = out.result()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 0, f"the bot failed as an ordinary user: {stdout[-2000:]!r}"
    return json.loads(stdout.decode().strip().splitlines()[-1]), before - lowest


async def test_disk_fill_as_an_ordinary_user_stays_inside_the_cap(
    cfg: SandboxConfig, public_dir: Path
) -> None:
    limits = kit.LIMITS.replace(output_dir_mb=16, timeout_s=20.0, cpu_s=20.0)
    code = kit.program("disk_fill", target=".", safety_cap_mb=512)
    result, host_used = await run_as_ordinary_user(cfg, public_dir, code, limits)
    found = json.loads(result["stdout"].split("REPORT ", 1)[1])
    # an ordinary user has no cgroups (isolation "partial"), but the disk layer holds without root
    assert result["isolation"] in ("full", "partial"), result
    assert result["layers"]["disk"] == "tmpfs", result["layers"]
    assert found["error"] is not None and "errno=28" in found["error"], found  # ENOSPC
    assert found["written_mb"] <= limits.output_dir_mb, found
    assert host_used < 64 * kit.MiB, f"host disk dropped by {host_used / kit.MiB:.0f} MiB"
    assert sum(f["size"] for f in result["files"]) <= limits.max_files_total_bytes
    await kit.assert_no_strays(frozenset({ORDINARY_UID if os.geteuid() == 0 else os.geteuid()}))
