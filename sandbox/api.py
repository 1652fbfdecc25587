"""The public entry point: `async with Sandbox(cfg) as sb: result = await sb.run(code, limits)`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
from pathlib import Path

from sandbox import (
    bootstrap,
    cgroups,
    command,
    hostfs,
    layers,
    lean,
    locate,
    parked,
    runner,
    seccomp,
    sockets,
    uidpool,
)
from sandbox.config import SandboxConfig, check_limits
from sandbox.execute import execute, plain_payload
from sandbox.pool import Tracker, WarmPool
from sandbox.types import RunLimits, RunResult, RunWorkspace, SandboxUnavailable
from sandbox.workspace import Prepared, supervisor_source
from sandbox.workspace import prepare as prepare_workspace
from sandbox.workspace import refused as refused_workspace

log = logging.getLogger(__name__)
PROBE_CODE = "print('ok')"
MAX_CODE_CHARS = 1_000_000


def resolve_env(cfg: SandboxConfig, weak: bool) -> runner.Env:
    """Resolve paths and available layers (sync); SandboxUnavailable says what is missing."""
    ident = locate.identity(cfg)
    locate.check_env(cfg, ident)
    hostfs.sweep_stale_run_dirs()
    support = cgroups.detect(cfg.cgroup, cfg.cgroup_root, prepare=True, runs=cfg.max_concurrent)
    cgroups.sweep_stale(support)
    bwrap = None if weak else locate.find_bwrap(cfg, ident)
    fonts = sorted((cfg.env_dir / "mpl").glob("fontlist-*.json"))
    binds = command.interpreter_binds(cfg.python)
    source = supervisor_source()  # with the workspace helpers in front, as a string constant
    layout = command.Layout(
        bwrap=bwrap,
        python=cfg.python,
        site_dir=cfg.site_dir,
        fontlist=fonts[-1] if fonts else None,
        supervisor=source,
        supervisor_code=bootstrap.compile_supervisor(cfg.python, source),
        seccomp=seccomp.program() if seccomp.supported() else None,
        ro_binds=binds,
        masked=bound_sockets(cfg, binds) if bwrap is not None else (),
    )
    uids = _slot_uids(cfg) if ident.drop else ()
    # RLIMIT_NPROC counts every task of the real uid: other sandboxes, and the bot itself when it is not root.
    slots = cfg.pool_size + lean.slots(cfg.pool_size, cfg.preimport) + cfg.max_concurrent
    nproc_base = runner.SANDBOX_TASKS * slots + (0 if ident.drop else _own_tasks())
    if uids:
        # A per-slot uid holds one sandbox, so the cap is exact. Measured on 6.18: 2 of its 3 bwrap/python
        # tasks count toward the limit (per-user-namespace accounting); were all 3 counted, a run would
        # get one process fewer, never more.
        nproc_base = runner.SANDBOX_TASKS - 1
    use_tmpfs = bwrap is not None  # the working directory is a size-limited tmpfs inside the sandbox
    uid = "per-slot" if uids else "shared" if ident.drop else "own"
    found = layers.describe(bwrap is not None, layout.seccomp is not None, support, use_tmpfs, uid)
    return runner.Env(
        layout=layout,
        ident=ident,
        use_cgroups=support.enabled,
        isolation=layers.isolation(found, cfg.weak_mode if weak else ""),
        nproc_base=nproc_base,
        setpriv=_setpriv() if ident.drop else None,
        cgroup=support,
        cpu_quota=cfg.cpu_quota,
        layers=found,
        uids=uids,
    )


def _slot_uids(cfg: SandboxConfig) -> tuple[int, ...]:
    """Return the usable per-slot uids, or () (all runs share the sandbox user) if too few are free."""
    span = cfg.uid_range
    if span is None:
        return ()
    taken = uidpool.conflicts(*span, uidpool.lock_dir())
    usable = tuple(u for u in range(span[0], span[1] + 1) if u not in taken)
    need = cfg.pool_size + lean.slots(cfg.pool_size, cfg.preimport) + cfg.max_concurrent
    if len(usable) < need:
        log.warning(
            "CODEBOT_SANDBOX_UIDS=%s: only %d of the uids are unused (%d needed); runs share %s: %s",
            cfg.sandbox_uids,
            len(usable),
            need,
            cfg.sandbox_user,
            "; ".join(f"{u}: {why}" for u, why in list(taken.items())[:5]),
        )
        return ()
    if taken:
        log.warning("CODEBOT_SANDBOX_UIDS: skipping uids in use: %s", sorted(taken)[:10])
    return usable


def _uid_pool(env: runner.Env) -> uidpool.UidPool | None:
    if not env.uids:
        return None
    locks = uidpool.lock_dir()
    if locks is None:
        log.warning("no safe %s: uids are not coordinated with other bots on this host", uidpool.LOCK_DIR)
    return uidpool.UidPool(list(env.uids), locks)


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
        self._lean: WarmPool | None = None  # slots with nothing pre-imported, for code that needs nothing
        self._uids: uidpool.UidPool | None = None
        self._parked: parked.Parked | None = None  # the next cold start's bwrap, waiting (parked.py)
        self._parking = False
        self._closing = False
        self._sem = asyncio.Semaphore(cfg.max_concurrent)

    @property
    def isolation(self) -> str:
        """Return "full", or the name of the weak mode in use."""
        if self._env is None:
            raise RuntimeError("Sandbox is not started: use `async with Sandbox(cfg) as sb`")
        return self._env.isolation

    @property
    def layers(self) -> dict[str, str | bool]:
        """Return which isolation layers every run gets here (the shape is in sandbox/layers.py)."""
        if self._env is None:
            raise RuntimeError("Sandbox is not started: use `async with Sandbox(cfg) as sb`")
        return dict(self._env.layers)

    @property
    def uid_pool(self) -> uidpool.UidPool | None:
        """The per-slot uids, None when runs share one uid (for doctor and tests)."""
        return self._uids

    @property
    def pool(self) -> WarmPool | None:
        """The warm pool, None when pool_size is 0 (for doctor and tests)."""
        return self._pool

    @property
    def parked_bwrap(self) -> parked.Parked | None:
        """The bwrap parked for the next cold run (sandbox/parked.py), if one is waiting (for tests)."""
        return self._parked

    @property
    def lean_pool(self) -> WarmPool | None:
        """The lean warm slot (sandbox/lean.py), None without pre-imports or a pool (for tests, the bench)."""
        return self._lean

    async def __aenter__(self) -> Sandbox:
        self._env = await self._start_env()
        self._closing = False
        self._park_next()
        if self.cfg.pool_size > 0:
            self._pool = WarmPool(
                self._spawn_warm, self._destroy, self._tracker, self.cfg.pool_size, self.cfg.pool_max_age_s
            )
            self._pool.start()
        if lean.slots(self.cfg.pool_size, self.cfg.preimport):
            size = lean.slots(self.cfg.pool_size, self.cfg.preimport)
            self._lean = WarmPool(
                self._spawn_lean, self._destroy, self._tracker, size, self.cfg.pool_max_age_s
            )
            self._lean.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        for pool in (self._pool, self._lean):
            if pool is not None:
                await pool.close()
        if self._parked is not None:
            waiting, self._parked = self._parked, None
            await self._discard(waiting)
        await self._tracker.drain()
        self._env = None

    async def _start_env(self) -> runner.Env:
        try:
            env = await asyncio.to_thread(resolve_env, self.cfg, False)
            self._uids = _uid_pool(env)
            await self._probe(env)
            return env
        except SandboxUnavailable as exc:
            if not self.cfg.weak_mode:
                raise
            log.warning(
                "sandbox unavailable, using weak mode %s: no namespaces and no seccomp, so code can read "
                "what the sandbox uid can (the bot's files too, if readable) and reach the network: %s",
                self.cfg.weak_mode,
                exc,
            )
        env = await asyncio.to_thread(resolve_env, self.cfg, True)
        self._uids = _uid_pool(env)
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
        # _pickle: a workspace run saves its state with it (3 ms to import, already there with pandas)
        preimport = ",".join((*self.cfg.preimport, "_pickle"))
        return await self._spawn(self._env, preimport, self.cfg.default_limits, False)

    async def _spawn_lean(self) -> runner.Slot:
        assert self._env is not None
        return await self._spawn(self._env, "", self.cfg.default_limits, False)

    async def _spawn(self, env: runner.Env, preimport: str, limits: RunLimits, cold: bool) -> runner.Slot:
        """Start a slot under a uid of its own (when there is a uid pool)."""
        try:
            uid = await self._uids.acquire() if self._uids is not None else None
        except TimeoutError:
            msg = "no sandbox uid came free in time (a run's processes outlived it)"
            raise SandboxUnavailable(msg) from None
        try:
            return await runner.spawn(env, preimport, limits, self._tracker.start, cold, uid)
        except BaseException:
            if uid is not None and self._uids is not None:
                # spawn's own clean-up is under way; the uid rests until its processes are gone
                self._tracker.start(self._uids.release(uid))
            raise

    def _park_next(self) -> None:
        """Park the next cold start's bwrap in the background, where that is possible and has a spare uid."""
        env = self._env
        if (
            env is None
            or self._closing
            or self._parking
            or self._parked is not None
            or not parked.parkable(env)
        ):
            return
        if self._uids is not None and self._uids.free <= self.cfg.max_concurrent:
            return  # the uid it would hold may be needed by the runs (and the warm slots)
        self._parking = True
        self._tracker.start(self._park(env))

    async def _park(self, env: runner.Env) -> None:
        uid = None
        try:
            uid = await self._uids.acquire() if self._uids is not None else None
            waiting = await parked.park(env, self.cfg.default_limits, uid)
        except Exception as exc:  # cold starts then spawn as before
            log.debug("could not park a bwrap: %s", exc)
            if uid is not None and self._uids is not None:
                await self._uids.release(uid)
            return
        finally:
            self._parking = False
        if self._closing or self._parked is not None:
            await self._discard(waiting)
        else:
            self._parked = waiting

    async def _discard(self, waiting: parked.Parked) -> None:
        waiting.close_options()
        await self._destroy(waiting.slot)

    async def _cold(self, env: runner.Env, limits: RunLimits, code: str | None) -> tuple[runner.Slot, bool]:
        """Start a cold run's sandbox: from the parked bwrap if there is one, else spawned now.

        `code` (a run without a workspace) goes in with a parked start when it is small; the second value
        says whether it did.
        """
        waiting, self._parked = self._parked, None
        if waiting is not None:
            payload = plain_payload(env, code, limits) if code is not None else ()
            if sum(map(len, payload)) > parked.EARLY_PAYLOAD:
                payload = ()
            try:
                return await parked.unpark(env, waiting, limits, payload), bool(payload)
            except BaseException as exc:
                # Also on cancellation (a Stop while it starts): its code may already be running.
                self._tracker.start(self._destroy(waiting.slot))
                if not isinstance(exc, Exception):
                    raise
                log.warning("the parked sandbox failed to start, starting another: %s", exc)
        return await self._spawn(env, "", limits, True), False

    async def _destroy(self, slot: runner.Slot) -> None:
        """Destroy a slot, then give its uid back (reused only once its processes are all gone)."""
        gone = False
        try:
            await runner.destroy(slot)
            # its cgroup is removed, which the kernel allows only once every process in it has ended
            gone = slot.cgroup is not None
        finally:
            if slot.uid is not None and self._uids is not None:
                await self._uids.release(slot.uid, gone)

    async def run(
        self, code: str, limits: RunLimits | None = None, workspace: RunWorkspace | None = None
    ) -> RunResult:
        """Run code in a fresh sandbox and return its outcome; only a broken sandbox raises.

        With a workspace the run starts from its files (in the working directory) and its state (the
        previous run's names); see sandbox/workspace.py and RunResult.state_saved.
        """
        env = self._env
        if env is None:
            raise RuntimeError("Sandbox is not started: use `async with Sandbox(cfg) as sb`")
        limits = self.cfg.default_limits if limits is None else limits
        check_limits(limits)
        if len(code) > MAX_CODE_CHARS:  # the code's own fault: an outcome, not an exception
            error = f"the code is {len(code)} characters long; the limit is {MAX_CODE_CHARS}\n"
            return RunResult(error=error, exit_code=1, isolation=env.isolation, layers=dict(env.layers))
        prep = prepare_workspace(workspace, limits) if workspace is not None else None
        if prep is not None and prep.error is not None:
            return refused_workspace(prep, env.isolation, dict(env.layers))
        async with self._sem:
            return await self._run_in(env, self._take(code, limits, prep is None), code, limits, prep)

    def _take(self, code: str, limits: RunLimits, plain: bool) -> runner.Slot | None:
        """Return a warm slot that fits: the lean one for code needing no pre-import, else a heavy one."""
        slot = None
        if plain and self._lean is not None and lean.is_lean(code):  # a workspace's state may need numpy
            slot = self._lean.take(lambda s: _fits(s, limits))
        if slot is None and self._pool is not None:
            slot = self._pool.take(lambda s: _fits(s, limits))
        return slot

    async def _run_in(
        self,
        env: runner.Env,
        slot: runner.Slot | None,
        code: str,
        limits: RunLimits,
        prep: Prepared | None = None,
    ) -> RunResult:
        sent = False
        if slot is None:  # cold start: a plain interpreter, no pre-imports
            slot, sent = await self._cold(env, limits, code if prep is None else None)
        try:
            result = await execute(env, slot, code, limits, prep, sent)
            return dataclasses.replace(result, layers=dict(env.layers))
        finally:
            # Kill at once, even when the caller cancelled us; the rest of the clean-up (reaping, cgroup
            # and directory removal) is off the reply path, tracked, and awaited by __aexit__.
            runner.kill(slot.proc)
            self._tracker.start(self._destroy(slot))
            for pool in (self._pool, self._lean):
                if pool is not None:
                    pool.wake()
            self._park_next()  # after the run: parking never competes with a start


def _fits(slot: runner.Slot, limits: RunLimits) -> bool:
    return slot.output_dir_mb == limits.output_dir_mb and slot.tmp_mb == limits.tmp_mb
