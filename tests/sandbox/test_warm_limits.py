"""A warm sandbox serves a run whose limits differ from the pool's defaults: its cgroups are rewritten."""

from __future__ import annotations

from collections.abc import Callable

from sandbox import RunLimits, Sandbox

if __package__:  # tests/sandbox is a package
    from .conftest import wait_pool_ready
else:  # pytest put this directory on sys.path
    from conftest import wait_pool_ready

ALLOC = "b = bytearray({mb} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('held', len(b) >> 20)"


async def test_a_run_with_more_memory_than_the_default_uses_a_warm_sandbox(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    async with open_sandbox(pool_size=1, preimport=()) as sb:
        await wait_pool_ready(sb, 1)
        spawned = sb.pool.spawned if sb.pool is not None else 0
        more = sb.cfg.default_limits.memory_mb * 2
        result = await sb.run(
            ALLOC.format(mb=more * 3 // 4), RunLimits(timeout_s=30.0, cpu_s=20.0, memory_mb=more)
        )
        assert result.ok and result.stdout == f"held {more * 3 // 4}\n", result.to_json()
        assert sb.pool is not None and sb.pool.spawned == spawned, "the run did not take the warm sandbox"


async def test_a_run_with_less_memory_than_the_default_is_held_to_it(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    async with open_sandbox(pool_size=1, preimport=()) as sb:
        await wait_pool_ready(sb, 1)
        less = sb.cfg.default_limits.memory_mb // 4
        result = await sb.run(
            ALLOC.format(mb=less * 2), RunLimits(timeout_s=30.0, cpu_s=20.0, memory_mb=less)
        )
        assert not result.ok and result.killed_reason == "memory", result.to_json()
