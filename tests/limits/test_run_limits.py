"""A limit an admin changes reaches the real sandbox on the next run."""

from __future__ import annotations

import dataclasses

from core.limits import LimitsEngine
from core.types import Author
from sandbox import RunLimits, Sandbox, SandboxConfig
from tests.limits.conftest import WS

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(30)\nprint('finished')"


async def test_a_lowered_timeout_kills_a_long_run_at_the_new_value(engine: LimitsEngine) -> None:
    await engine.set(WS, "timeout", "2s", Author("U9", "alice", is_admin=True))
    base = RunLimits(timeout_s=10.0, cpu_s=10.0)
    limits = (await engine.effective(WS)).run_limits(base)
    assert limits.timeout_s == 2
    cfg = dataclasses.replace(SandboxConfig.from_env({}), pool_size=0)
    async with Sandbox(cfg) as sandbox:
        result = await sandbox.run(SLEEPER, limits)
    assert result.timed_out and result.killed_reason == "timeout"
    assert "started" in result.stdout and "finished" not in result.stdout
    assert 1900 <= result.duration_ms < 5000  # the new 2 s, not the base 10 s


async def test_a_lowered_output_limit_truncates_at_the_new_size(engine: LimitsEngine) -> None:
    await engine.set(WS, "output", "4KB", Author("U9", "alice", is_admin=True))
    limits = (await engine.effective(WS)).run_limits(RunLimits())
    cfg = dataclasses.replace(SandboxConfig.from_env({}), pool_size=0)
    async with Sandbox(cfg) as sandbox:
        result = await sandbox.run("print('x' * 100_000)", limits)
    assert result.truncated
    assert len(result.stdout.encode()) <= 4 * 1024
