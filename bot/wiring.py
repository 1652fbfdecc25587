"""The composition root: the one place that names concrete classes and wires them together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from core.admin import Admins
from core.agent import Agent, Runner
from core.commands import Commands
from core.lease import TurnLeases, replica_id
from core.limits import LimitsEngine, WorkspaceGate
from core.limits.store_gate import StoreGate
from core.llm import LLMClient
from core.observe import MeteredLLMClient, MeteredRunner, MeteredStore, ObservedTurns
from core.readiness import Ops, Readiness
from core.recovery import Recovery
from core.review.reviewer import Reviewer
from core.service import Codebot
from core.settings import Settings
from core.store.base import Store
from core.store.factory import make_store
from core.threadfiles.sweep import WorkspaceSweeper
from core.turn import TurnDeps
from sandbox import Sandbox


def store_for(settings: Settings, pool_size: int | None = None) -> Store:
    """The store CODEBOT_DB names (a SQLite file or a PostgreSQL URL), not opened yet."""
    return make_store(
        settings.database,
        busy_timeout_s=settings.db_busy_timeout_s,
        pool_size=settings.db_pool_size if pool_size is None else pool_size,
    )


def limits_engine(store: Store, settings: Settings) -> LimitsEngine:
    """The limits engine with the operator's defaults and ceilings (CODEBOT_LIMIT_*)."""
    return LimitsEngine(store, settings.limits)


def llm_client(settings: Settings) -> LLMClient:
    """A client for the configured LLM endpoint, as the bot itself talks to it (doctor's probe)."""
    return LLMClient(settings)


async def _start_sweeper(stack: AsyncExitStack, store: Store, settings: Settings) -> None:
    """Delete idle thread workspaces now, then hourly until the core closes."""
    sweeper = WorkspaceSweeper(store, settings.workspace_retention_days)
    await sweeper.sweep_once()
    task = asyncio.create_task(sweeper.run_periodically(), name="workspace sweep")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)


def _leases(settings: Settings, store: Store) -> tuple[TurnLeases, WorkspaceGate]:
    # Replicas on PostgreSQL hold leases, thread locks and one queue per workspace in the database
    # (core.lease); one process on SQLite keeps its queue in memory.
    owner, shared = replica_id(), isinstance(settings.database, str)
    gate = StoreGate(store, lease_s=settings.turn_lease_s, owner=owner) if shared else None
    leases = TurnLeases(store, shared=shared, lease_s=settings.turn_lease_s, owner=owner, gate=gate)
    return leases, gate or WorkspaceGate()


@asynccontextmanager
async def open_core(
    settings: Settings,
    runner: Runner | None = None,
    ops: Ops | None = None,
    platforms: Sequence[str] | None = None,
) -> AsyncIterator[Codebot]:
    """Open the store, the LLM client and the sandbox, and yield a running Codebot.

    `runner` replaces the sandbox (core tests and benchmarks measuring the core alone); production
    never passes it.
    `ops` gets the metrics and answers readiness (the CLI passes the one its listener serves).
    `platforms`: what this process posts to, so it takes over only dead turns it can report (None: any).
    """
    ops = ops or Ops()
    llm_client = MeteredLLMClient(settings, ops.metrics)
    store: Store = MeteredStore(store_for(settings), ops.metrics)
    await store.open()
    try:
        async with AsyncExitStack() as stack:
            await _start_sweeper(stack, store, settings)
            sandbox = MeteredRunner(
                runner if runner is not None else await stack.enter_async_context(Sandbox(settings.sandbox)),
                ops.metrics,
            )
            limits = limits_engine(store, settings)
            leases, gate = _leases(settings, store)
            agent = Agent(llm_client, Reviewer(llm_client), sandbox, stream=settings.stream)
            deps = TurnDeps(
                settings=settings,
                store=store,
                agent=agent,
                limits=limits,
                gate=gate,
                base_limits=settings.sandbox.default_limits,
                leases=leases,
            )
            commands = Commands(store, limits, Admins(settings.admin_ids))
            recovery = Recovery(store, leases, platforms=platforms)
            core = Codebot(settings, store, ObservedTurns(deps, ops.metrics), commands, recovery=recovery)
            ops.bind(Readiness(settings, store, sandbox, core))
            try:
                yield core
            except BaseException:  # Ctrl-C or a crash of the caller: do not wait out the grace period
                await core.shutdown(grace_s=0)
                raise
            await core.shutdown()
    finally:
        await llm_client.aclose()
        await store.close()
