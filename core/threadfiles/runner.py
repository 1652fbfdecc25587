"""Runs of one turn against the thread's workspace: files and state in, changed files and state out.

Wraps the sandbox for one turn. The workspace is loaded from the store at the first run (a turn that
never runs code reads no bytes), kept in memory for the turn's later runs, and each run's changes are
written back before the model sees the result, so a crash loses at most the run in flight. A workspace
the turn's context shows holds no bytes is not loaded, and a state the run left as stored is not saved
again: a plain question costs no workspace round trip.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.store.base import NewFile, StoreError, ThreadContext, ThreadFiles, ThreadState
from core.threadfiles.caps import MiB, ThreadCaps
from core.threadfiles.preview import text_preview
from core.types import ThreadKey
from sandbox.types import OutputFile, RunLimits, RunResult, RunWorkspace, SandboxUnavailable

log = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]


class WorkspaceRunner(Protocol):
    """The sandbox as seen here: it takes a RunWorkspace (sandbox/api.py, issue 14)."""

    async def run(
        self, code: str, limits: RunLimits | None = None, *, workspace: RunWorkspace | None = None
    ) -> RunResult: ...


class ThreadRunner:
    """The Runner a turn's agent uses: every run sees the thread's files and kept variables."""

    def __init__(
        self,
        inner: WorkspaceRunner,
        store: ThreadFiles,
        key: ThreadKey,
        caps: ThreadCaps,
        notify: Notify,
        clock: Callable[[], float],
        context: ThreadContext | None = None,
    ) -> None:
        self._inner = inner
        self._store = store
        self._key = key
        self._caps = caps
        self._notify = notify
        self._clock = clock
        self._files: dict[str, bytes] | None = None  # loaded at the first run
        self._state = b""
        self._stored = _stored(None)  # what the store holds, as a save would write it (set by the load)
        known = context.state if context else None
        if context is not None and not context.files and not (known and known.kept):
            # Nothing to read (the thread lock keeps the workspace as the context saw it) and nothing
            # to mark used: the retention sweep only deletes bytes.
            self._files, self._stored = {}, _stored(known)

    async def run(self, code: str, limits: RunLimits | None = None) -> RunResult:
        """Run with the workspace; store what the run changed; say what could not be kept."""
        if self._files is None:
            try:
                await self._load()
            except StoreError as exc:  # nothing ran: for the audit, as when the sandbox cannot start
                raise SandboxUnavailable(f"This thread's workspace could not be loaded: {exc}") from exc
        files = self._files if self._files is not None else {}
        workspace = RunWorkspace(
            files=tuple(OutputFile(n, d) for n, d in files.items()),
            state=self._state,
            keep_state=True,
            max_state_bytes=self._caps.state_bytes,
        )
        result = await self._inner.run(code, _room_for(limits, files), workspace=workspace)
        try:
            return await self._keep(result, files)
        except StoreError as exc:  # the run happened: its result still goes to the model and the thread
            log.error("could not store the workspace changes of a run in %s: %s", self._key, exc)
            await self._notify(f"This run's files and variables could not be saved for later runs ({exc}).")
            return result

    async def _load(self) -> None:
        files, state = await self._store.load_workspace(self._key, self._clock())  # marks it used, too
        self._files = {f.name: data for f, data in files}
        self._state = state.blob if state is not None else b""
        self._stored = _stored(state)

    async def _keep(self, result: RunResult, files: dict[str, bytes]) -> RunResult:
        gone = [n for n in result.deleted_files if n in files]
        if gone:
            await self._store.delete_files(self._key, gone)
            for name in gone:
                files.pop(name, None)
        not_kept = await self._keep_files(result.files, files)
        dropped = result.dropped + tuple((n, self._over_files_text()) for n in not_kept)
        if result.state_saved:  # False after a kill: the previous state stays
            await self._keep_state(result, dropped)
        if not_kept:
            await self._notify(
                f"Not kept in this thread's workspace: {', '.join(f'`{n}`' for n in not_kept)}: "
                f"{self._over_files_text()}. They are shown here but later runs will not see them."
            )
            return dataclasses.replace(result, dropped=dropped)
        return result

    async def _keep_files(self, outputs: tuple[OutputFile, ...], files: dict[str, bytes]) -> list[str]:
        """Store new and changed files while the workspace stays under its cap; return the rest."""
        used = sum(len(d) for d in files.values())
        keep: list[NewFile] = []
        not_kept: list[str] = []
        for out in outputs:
            if files.get(out.name) == out.data:
                continue  # unchanged: the sandbox should not return it, but never store it twice
            grown = used - len(files.get(out.name, b"")) + out.size
            if grown > self._caps.files_bytes:
                not_kept.append(out.name)
                continue
            used = grown
            keep.append(NewFile(out.name, out.data, "run", text_preview(out.data)))
        if keep:
            await self._store.put_files(self._key, keep, self._clock())
            files.update((f.name, f.data) for f in keep)
        return not_kept

    async def _keep_state(self, result: RunResult, dropped: tuple[tuple[str, str], ...]) -> None:
        if len(result.state) > self._caps.state_bytes:  # the sandbox bounds it; this is the backstop
            log.warning("a run returned %d bytes of state, over the cap; not kept", len(result.state))
            return
        state = ThreadState(result.state, len(result.state), result.kept, dropped)
        if _stored(state) == self._stored:  # the same bytes and description: the stored row stays
            return  # (a non-empty workspace was marked used when it was loaded this turn)
        await self._store.save_state(self._key, state, self._clock())
        self._state = result.state
        self._stored = _stored(state)

    def _over_files_text(self) -> str:
        return f"the thread's workspace would pass its {self._caps.files_mb} MB limit (`thread_files`)"


def _stored(state: ThreadState | None) -> tuple[bytes, tuple[object, ...], tuple[object, ...]]:
    """What a state gives later runs and the model. `kept` lists every name the next run finds
    (sandbox/workspace.py), so a state that keeps none restores nothing, whatever its blob holds."""
    if state is None:
        return b"", (), ()
    return (state.blob if state.kept else b""), state.kept, state.dropped


def _room_for(limits: RunLimits | None, files: dict[str, bytes]) -> RunLimits | None:
    """Grow the run's working directory by the workspace's size, so the copy fits and the run has room.

    An empty or small workspace keeps the base size, so the run can still take a warm slot.
    """
    if limits is None or not files:
        return limits
    total_mb = -(-sum(len(d) for d in files.values()) // MiB)  # rounded up
    if total_mb * 2 <= limits.output_dir_mb:
        return limits
    return limits.replace(output_dir_mb=limits.output_dir_mb + total_mb)
