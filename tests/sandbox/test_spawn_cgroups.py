"""A cold sandbox is handed over with every process inside every group of its run, however its start-up
raced the host: the move of bwrap into the groups while it starts, or the move at READY."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sandbox import RunLimits, Sandbox, SandboxConfig, cgroups, cgroups_v1, runner
from sandbox.pool import Tracker

LIMITS = RunLimits(timeout_s=10.0, cpu_s=5.0)


@pytest.fixture
async def env(cfg: SandboxConfig) -> runner.Env:
    async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
        assert sb._env is not None
        if not sb._env.use_cgroups:
            pytest.skip("no per-run cgroups here (v1 needs root; v2 needs a delegated subtree)")
        return sb._env


@pytest.mark.parametrize("early_attach", [True, False])
async def test_every_process_is_in_every_group_before_any_code_runs(
    env: runner.Env, early_attach: bool
) -> None:
    tracker = Tracker()
    born_inside = 0
    for _ in range(12):  # enough starts that both sides of the race are taken (about half and half here)
        slot = await runner.spawn(env, "", LIMITS, tracker.start, early_attach)
        try:
            assert slot.cgroup is not None
            chain = cgroups.chain_pids(slot.proc.pid)
            assert len(chain) == 3, chain  # bwrap, the supervisor (pid 1), the child that runs the code
            # the code's process in every group; bwrap's two at least where tasks are counted (pids)
            assert not slot.cgroup.missing(chain[-1]), f"{chain} (born inside: {slot.born_inside})"
            tasks = set(cgroups_v1.procs(pids_dir(slot.cgroup)))
            assert set(chain) <= tasks, f"{chain} not all in {tasks} (born inside: {slot.born_inside})"
            born_inside += slot.born_inside
        finally:
            runner.kill(slot.proc)
            await runner.destroy(slot)
    await tracker.drain()
    if not early_attach:
        assert born_inside == 0  # warm slots are moved in at READY, after their pre-imports


def pids_dir(group: cgroups.RunCgroup) -> Path:
    return group.pids if isinstance(group, cgroups.V1Group) else group.path
