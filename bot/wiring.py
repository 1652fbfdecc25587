"""The composition root: the one place that names concrete classes and wires them together."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from core.agent import Agent, Runner
from core.commands import Commands
from core.limits import LimitDefaults, LimitsEngine, WorkspaceGate
from core.limits.store_gate import StoreGate
from core.observe import MeteredLLMClient, MeteredRunner, MeteredStore, ObservedTurns
from core.readiness import Ops, Readiness
from core.review.reviewer import Reviewer
from core.service import Codebot
from core.settings import ConfigError, Settings, read_environment
from core.store.base import Store
from core.store.factory import make_store
from core.threadfiles.sweep import WorkspaceSweeper
from core.turn import TurnDeps
from sandbox import Sandbox, SandboxConfig


def environment(env_file: str | Path | None = ".env") -> dict[str, str]:
    """Return `.env` values overlaid by the process environment (the environment wins)."""
    return read_environment(env_file)


def sandbox_config(environ: Mapping[str, str], **overrides: Any) -> SandboxConfig:
    """Build the sandbox configuration, reporting a bad value as a ConfigError."""
    try:
        cfg = SandboxConfig.from_env(environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def limit_defaults(environ: Mapping[str, str]) -> LimitDefaults:
    try:
        return LimitDefaults.from_env(environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def _start_sweeper(stack: AsyncExitStack, store: Store, settings: Settings) -> None:
    """Delete idle thread workspaces now, then hourly until the core closes."""
    sweeper = WorkspaceSweeper(store, settings.workspace_retention_days)
    await sweeper.sweep_once()
    task = asyncio.create_task(sweeper.run_periodically(), name="workspace sweep")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)


def _gate(settings: Settings, store: Store) -> WorkspaceGate:
    """Replicas on PostgreSQL share one queue per workspace in the database; one process keeps its own."""
    if isinstance(settings.database, str):
        return StoreGate(store, lease_s=settings.turn_lease_s)
    return WorkspaceGate()


@asynccontextmanager
async def open_core(
    settings: Settings,
    environ: Mapping[str, str],
    sandbox_cfg: SandboxConfig | None = None,
    runner: Runner | None = None,
    ops: Ops | None = None,
) -> AsyncIterator[Codebot]:
    """Open the store, the LLM client and the sandbox, and yield a running Codebot.

    `runner` replaces the sandbox (benchmarks measuring the core alone); production never passes it.
    `ops` gets the metrics and answers readiness (the CLI passes the one its listener serves).
    """
    cfg = sandbox_cfg or sandbox_config(environ)
    defaults = limit_defaults(environ)
    ops = ops or Ops()
    llm_client = MeteredLLMClient(settings, ops.metrics)
    store: Store = MeteredStore(
        make_store(
            settings.database, busy_timeout_s=settings.db_busy_timeout_s, pool_size=settings.db_pool_size
        ),
        ops.metrics,
    )
    await store.open()
    try:
        async with AsyncExitStack() as stack:
            await _start_sweeper(stack, store, settings)
            sandbox = MeteredRunner(
                runner if runner is not None else await stack.enter_async_context(Sandbox(cfg)), ops.metrics
            )
            limits = LimitsEngine(store, defaults)
            agent = Agent(llm_client, Reviewer(llm_client), sandbox)
            deps = TurnDeps(
                settings=settings,
                store=store,
                agent=agent,
                limits=limits,
                gate=_gate(settings, store),
                base_limits=cfg.default_limits,
            )
            commands = Commands(store, limits, settings.admin_ids)
            core = Codebot(settings, store, ObservedTurns(deps, ops.metrics), commands)
            ops.bind(Readiness(settings, store, sandbox, core))
            # Everything built so far (modules, SDK schemas, pydantic models) lives as long as the process.
            # Moving it out of the collector's reach keeps full collections from rescanning it: without
            # this, a full collection under load blocked the event loop for over 100 ms.
            gc.freeze()
            try:
                yield core
            except BaseException:  # Ctrl-C or a crash of the caller: do not wait out the grace period
                await core.shutdown(grace_s=0)
                raise
            await core.shutdown()
    finally:
        await llm_client.aclose()
        await store.close()
