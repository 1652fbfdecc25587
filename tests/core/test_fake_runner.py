"""The scripted runner refuses what the real sandbox refuses: bad caps raise, too much code fails."""

from __future__ import annotations

import pytest

from sandbox.api import MAX_CODE_CHARS
from sandbox.types import RunLimits, RunWorkspace, SandboxUnavailable
from tests.fake_runner import FakeRunner, ran


async def test_results_come_in_order_then_the_default_and_every_call_is_kept() -> None:
    runner = FakeRunner()
    runner.enqueue(ran("one\n"), SandboxUnavailable("gone"))
    assert (await runner.run("print('one')")).stdout == "one\n"
    with pytest.raises(SandboxUnavailable, match="gone"):
        await runner.run("x = 2", RunLimits(timeout_s=3))
    workspace = RunWorkspace(keep_state=True)
    assert (await runner.run("x = 3", workspace=workspace)).ok
    assert runner.codes == ["print('one')", "x = 2", "x = 3"]
    assert runner.calls[1].limits == RunLimits(timeout_s=3) and runner.calls[2].workspace is workspace


async def test_limits_the_sandbox_refuses_raise_and_too_much_code_fails_as_a_run() -> None:
    runner = FakeRunner()
    with pytest.raises(ValueError, match="TIMEOUT_S"):
        await runner.run("x = 1", RunLimits(timeout_s=0))
    long = await runner.run("#" * (MAX_CODE_CHARS + 1))
    assert not long.ok and "characters long" in (long.error or "")
