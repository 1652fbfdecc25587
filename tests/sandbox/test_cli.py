"""`python -m sandbox run/setup/doctor`, the doctor's report, and configuration from the environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from sandbox import RunLimits, SandboxConfig
from sandbox.doctor import report
from tests.sandbox.conftest import expected_isolation

PROJECT = Path(__file__).resolve().parents[2]
JSON_KEYS = {
    "stdout",
    "stderr",
    "result",
    "exit_code",
    "timed_out",
    "truncated",
    "killed_reason",
    "duration_ms",
    "files",
}


async def sandbox_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> tuple[int, str, str]:
    """Run `python -m sandbox ARGS` as operators do; return (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=PROJECT,
    )
    async with asyncio.timeout(timeout_s):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text("print('from file')\nopen('out.txt', 'w').write('data')\nresult = [1, 2]\n")
    return path


async def test_run_json_has_the_documented_keys(cfg: SandboxConfig, script: Path) -> None:
    code, out, _ = await sandbox_cli("run", str(script), "--json")
    data = json.loads(out)
    assert code == 0 and set(data) >= JSON_KEYS
    assert (data["stdout"], data["result"], data["exit_code"], data["isolation"]) == (
        "from file\n",
        "[1, 2]",
        0,
        expected_isolation(),
    )
    assert data["files"] == [{"name": "out.txt", "size": 4}]


async def test_run_prints_a_summary_and_fails_with_the_code(cfg: SandboxConfig, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("print('partial')\nraise ValueError('nope')\n")
    code, out, _ = await sandbox_cli("run", str(bad))
    assert code == 1
    assert "partial" in out and "ValueError: nope" in out and "failed (exit code 1)" in out


async def test_run_uses_limits_from_the_environment(cfg: SandboxConfig, tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    started = time.monotonic()
    code, out, _ = await sandbox_cli("run", str(slow), "--json", env={"CODEBOT_SANDBOX_TIMEOUT_S": "0.5"})
    assert code == 1 and json.loads(out)["killed_reason"] == "timeout"
    assert time.monotonic() - started < 10


async def test_run_with_unavailable_isolation_exits_2_and_says_why(script: Path) -> None:
    code, out, err = await sandbox_cli(
        "run", str(script), env={"CODEBOT_SANDBOX_BWRAP": "/nonexistent/bwrap"}
    )
    assert code == 2 and out == ""
    assert "unavailable" in err and "/nonexistent/bwrap" in err


async def test_run_of_a_missing_file_is_a_short_error(tmp_path: Path) -> None:
    code, _, err = await sandbox_cli("run", str(tmp_path / "missing.py"))
    assert code == 2 and "cannot read" in err and "Traceback" not in err


async def test_bad_setting_names_the_variable(script: Path) -> None:
    code, _, err = await sandbox_cli("run", str(script), env={"CODEBOT_SANDBOX_MEMORY_MB": "lots"})
    assert code == 2 and "CODEBOT_SANDBOX_MEMORY_MB" in err and "Traceback" not in err


async def test_setup_again_is_quick_and_skips_done_work(cfg: SandboxConfig) -> None:
    started = time.monotonic()
    code, out, _ = await sandbox_cli("setup")
    assert code == 0, out
    assert time.monotonic() - started < 5
    assert "already installed" in out and "self-test: ok" in out


async def test_doctor_reports_every_layer(cfg: SandboxConfig) -> None:
    checks = {c.name: c for c in await asyncio.to_thread(report, cfg)}
    expected = {"user", "bwrap", "user namespaces", "environment", "live run", "network", "seccomp"}
    expected.add("packages")
    assert expected <= set(checks)
    assert all(checks[name].ok for name in expected), [c for c in checks.values() if not c.ok]
    assert f"{expected_isolation()} isolation" in checks["live run"].detail
    assert "lo" in checks["network"].detail


async def test_doctor_says_how_to_fix_a_missing_bwrap(cfg: SandboxConfig) -> None:
    code, out, _ = await sandbox_cli("doctor", env={"CODEBOT_SANDBOX_BWRAP": "/nonexistent/bwrap"})
    assert code == 1
    assert "[!!] bwrap" in out and "/nonexistent/bwrap" in out and "[!!] live run" in out


def test_config_defaults_and_overrides() -> None:
    cfg = SandboxConfig.from_env(
        {
            "CODEBOT_SANDBOX_TIMEOUT_S": "2.5",
            "CODEBOT_SANDBOX_POOL_SIZE": "0",
            "CODEBOT_SANDBOX_PREIMPORT": "numpy, sympy",
            "CODEBOT_SANDBOX_MAX_FILES": "3",
        }
    )
    assert cfg.default_limits == RunLimits(timeout_s=2.5, max_files=3)
    assert (cfg.pool_size, cfg.preimport, cfg.max_concurrent, cfg.weak_mode) == (0, ("numpy", "sympy"), 4, "")
    assert SandboxConfig.from_env({}).default_limits == RunLimits()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CODEBOT_SANDBOX_TIMEOUT_S", "soon"),
        ("CODEBOT_SANDBOX_MEMORY_MB", "-1"),
        ("CODEBOT_SANDBOX_CPU_S", "nan"),
        ("CODEBOT_SANDBOX_MAX_CONCURRENT", "0"),
        ("CODEBOT_SANDBOX_WEAK_MODE", "yes-please"),
    ],
)
def test_invalid_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        SandboxConfig.from_env({name: value})
