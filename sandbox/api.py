"""The public entry point: `async with Sandbox(cfg) as sb: result = await sb.run(code, limits)`."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from sandbox import cgroups, command, hostfs, locate, runner, seccomp, sockets
from sandbox.config import SandboxConfig, check_limits
from sandbox.execute import execute
from sandbox.pool import Tracker, WarmPool
from sandbox.types import RunLimits, RunResult, SandboxUnavailable

log = logging.getLogger(__name__)
PROBE_CODE = "print('ok')"
MAX_CODE_CHARS = 1_000_000


def resolve_env(cfg: SandboxConfig, weak: bool) -> runner.Env:
    """Resolve paths and available layers (sync); SandboxUnavailable says what is missing."""
    ident = locate.identity(cfg)
    locate.check_env(cfg, ident)
    hostfs.sweep_stale_run_dirs()
    if cgroups.available():
        cgroups.sweep_stale()
    bwrap = None if weak else locate.find_bwrap(cfg, ident)
    fonts = sorted((cfg.env_dir / "mpl").glob("fontlist-*.json"))
    binds = command.interpreter_binds(cfg.python)
    layout = command.Layout(
        bwrap=bwrap,
        python=cfg.python,
        site_dir=cfg.site_dir,
        fontlist=fonts[-1] if fonts else None,
        supervisor=Path(__file__).with_name("supervisor.py").read_text(),
        seccomp=seccomp.program() if seccomp.supported() else None,
        ro_binds=binds,
        masked=bound_sockets(cfg, binds) if bwrap is not None else (),
    )
    slots = cfg.pool_size + cfg.max_concurrent
    # RLIMIT_NPROC counts every task of the real uid: other sandboxes, and the bot itself when it is not root.
    nproc_base = runner.SANDBOX_TASKS * slots + (0 if ident.drop else _own_tasks())
    return runner.Env(
        layout=layout,
        ident=ident,
        use_cgroups=cgroups.available(),
        isolation=cfg.weak_mode if weak else "full",
        nproc_base=nproc_base,
        setpriv=_setpriv() if ident.drop else None,
    )


def bound_trees(cfg: SandboxConfig, binds: tuple[str, ...]) -> tuple[str, ...]:
    """Return every host tree bound into the sandbox."""
    return (*binds, "/etc/fonts", str(cfg.site_dir))


def bound_sockets(cfg: SandboxConfig, binds: tuple[str, ...]) -> tuple[str, ...]:
    """Return the unix sockets under the bound trees, warning about each (runs mask them)."""
    found = sockets.scan(bound_trees(cfg, binds))
    for path in found.sockets:
        log.warning("unix socket %s is under a tree bound into the sandbox: masked in every run", path)
    if not found.complete:
        log.warning("the socket scan of the sandbox's bound trees stopped after %d entries", found.entries)
    return found.sockets


def _setpriv() -> Path | None:
    found = shutil.which("setpriv", path="/usr/bin:/bin")
    return Path(found) if found else None


def _own_tasks() -> int:
    try:
        return len(os.listdir("/proc/self/task")) + 16
    except OSError:
        return 64


class Sandbox:
    """Runs untrusted Python, one single-use sandbox per run, with a warm pool and a concurrency cap."""

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self._env: runner.Env | None = None
        self._tracker = Tracker()
        self._pool: WarmPool | None = None
        self._sem = asyncio.Semaphore(cfg.max_concurrent)

    @property
    def isolation(self) -> str:
        """Return "full", or the name of the weak mode in use."""
        if self._env is None:
            raise RuntimeError("Sandbox is not started: use `async with Sandbox(cfg) as sb`")
        return self._env.isolation

    @property
    def pool(self) -> WarmPool | None:
        """The warm pool, None when pool_size is 0 (for doctor and tests)."""
        return self._pool

    async def __aenter__(self) -> Sandbox:
        self._env = await self._start_env()
        if self.cfg.pool_size > 0:
            self._pool = WarmPool(
                self._spawn_warm, runner.destroy, self._tracker, self.cfg.pool_size, self.cfg.pool_max_age_s
            )
            self._pool.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self._tracker.drain()
        self._env = None

    async def _start_env(self) -> runner.Env:
        try:
            env = await asyncio.to_thread(resolve_env, self.cfg, False)
            await self._probe(env)
            return env
        except SandboxUnavailable as exc:
            if not self.cfg.weak_mode:
                raise
            log.warning("full isolation unavailable, using weak mode %s: %s", self.cfg.weak_mode, exc)
        env = await asyncio.to_thread(resolve_env, self.cfg, True)
        await self._probe(env)
        return env

    async def _probe(self, env: runner.Env) -> None:
        base = self.cfg.default_limits  # generous time: a loaded machine must not fail the self-test
        limits = base.replace(timeout_s=max(base.timeout_s, 10.0), cpu_s=max(base.cpu_s, 5.0))
        result = await self._run_in(env, None, PROBE_CODE, limits)
        if result.stdout.strip() != "ok":
            detail = (result.stderr or result.error or f"exit code {result.exit_code}").strip()[:500]
            raise SandboxUnavailable(f"sandbox self-test failed: {detail} (run `codebot doctor`)")

    async def _spawn_warm(self) -> runner.Slot:
        assert self._env is not None
        return await runner.spawn(
            self._env, ",".join(self.cfg.preimport), self.cfg.default_limits, self._tracker.start
        )

    async def run(self, code: str, limits: RunLimits | None = None) -> RunResult:
        """Run code in a fresh sandbox and return its outcome; only a broken sandbox raises."""
        env = self._env
        if env is None:
            raise RuntimeError("Sandbox is not started: use `async with Sandbox(cfg) as sb`")
        limits = self.cfg.default_limits if limits is None else limits
        check_limits(limits)
        if len(code) > MAX_CODE_CHARS:  # the code's own fault: an outcome, not an exception
            error = f"the code is {len(code)} characters long; the limit is {MAX_CODE_CHARS}\n"
            return RunResult(error=error, exit_code=1, isolation=env.isolation)
        async with self._sem:
            slot = self._pool.take(lambda s: _fits(s, limits)) if self._pool else None
            return await self._run_in(env, slot, code, limits)

    async def _run_in(
        self, env: runner.Env, slot: runner.Slot | None, code: str, limits: RunLimits
    ) -> RunResult:
        if slot is None:  # cold start: a plain interpreter, no pre-imports
            slot = await runner.spawn(env, "", limits, self._tracker.start, early_attach=True)
        try:
            return await execute(env, slot, code, limits)
        finally:
            # Kill at once, even when the caller cancelled us; the rest of the clean-up (reaping, cgroup
            # and directory removal) is off the reply path, tracked, and awaited by __aexit__.
            runner.kill(slot.proc)
            self._tracker.start(runner.destroy(slot))
            if self._pool is not None:
                self._pool.wake()


def _fits(slot: runner.Slot, limits: RunLimits) -> bool:
    return slot.output_dir_mb == limits.output_dir_mb and slot.tmp_mb == limits.tmp_mb
