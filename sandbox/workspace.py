"""The host's side of a run's workspace (issue 14): what goes in with the code, and what comes back.

Transport: the workspace travels on the sandbox's stdin, after the header line and before the code, as a
manifest (one `name-base64 size` line per file), the files' bytes, and the state blob. The child writes
the files into its tmpfs working directory before any user code runs (sandbox/workspace_box.py). Nothing
from the host's file system is bound in, so no path the host holds is ever reachable from the sandbox,
and the copy counts against the run's own tmpfs size and wall clock. The host never unpickles `state`:
it is opaque bytes, bounded by max_state_bytes both ways.

For callers (`Sandbox.run(code, limits, workspace=RunWorkspace(files, state, keep_state=True))`):
- files: the thread's files as OutputFile(name, data). Names are checked again here (no "/", no leading
  dot, printable, <= 255 bytes, no duplicates); a refused one is in `RunResult.unplaced` with the reason.
  Returned names go through hostfs.sanitise, so use names it leaves unchanged to keep them stable.
- `RunResult.files` holds only files the run created or changed (size + content hash against what went
  in): store each, replacing a file of the same name; `deleted_files` names placed files the run removed.
- `state_saved` True: `state` is the namespace the run left (store it, replacing the old one; it is b""
  when restoring the old state ended the run, which clears it); False (no keep_state, killed, died, the
  files did not fit): keep the previous state. A state whose restore hangs times the run out each time:
  clearing the thread's state (`reset`) is the way out. `kept` lists what the next
  run will find (name, type, short repr); `dropped` says what it will not, and why ("(state)" for notes
  about the state as a whole).
- Disk: the files live in the run's tmpfs working directory (limits.output_dir_mb, a cap, not reserved;
  tmpfs pages count against the memory cgroup); a workspace larger than that is refused with an error
  before the code runs. Warm slots are only used when limits.output_dir_mb and tmp_mb equal the config's
  default limits, as for any run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sandbox.report import Report
from sandbox.types import MiB, RunLimits, RunResult, RunWorkspace
from sandbox.workspace_box import MAX_FILES_IN, safe_name

KILLED_NOTE = "the run was stopped before its state was saved: the previous state is unchanged"
NO_REPORT_NOTE = "the run ended before its state was saved: the previous state is unchanged"


@dataclass(frozen=True)
class Prepared:
    """A workspace ready to send: header fields, the bytes that follow the header, and refusals."""

    fields: tuple[int, ...] = ()  # appended to the header line (see runner.header)
    pieces: tuple[bytes, ...] = ()  # manifest, each file, state: written in this order
    unplaced: tuple[tuple[str, str], ...] = ()  # (file, why it is not sent)
    notes: tuple[tuple[str, str], ...] = ()  # dropped before the run (e.g. a state over the cap)
    error: str | None = None  # the run must not start: the files cannot fit
    keep_state: bool = False
    max_state_bytes: int = 0


def prepare(ws: RunWorkspace, limits: RunLimits) -> Prepared:
    """Validate names again (a bad one is skipped), check the disk cap, and lay out the bytes to send."""
    unplaced: list[tuple[str, str]] = []
    seen: set[str] = set()
    manifest: list[bytes] = []
    bodies: list[bytes] = []
    for f in ws.files:
        why = _refuse(f.name, seen, len(bodies))
        if why is not None:
            unplaced.append((f.name[:200], why))
            continue
        seen.add(f.name)
        manifest.append(_b64(f.name) + b" %d\n" % len(f.data))
        bodies.append(f.data)
    total, disk = sum(map(len, bodies)), limits.output_dir_mb * MiB
    if total > disk:
        error = (
            f"the workspace's files ({total / MiB:.1f} MB) do not fit in the run's working directory "
            f"(output_dir_mb = {limits.output_dir_mb} MB); the code was not run\n"
        )
        return Prepared(unplaced=tuple(unplaced), error=error)
    state, notes = ws.state, []
    if len(state) > ws.max_state_bytes:
        notes.append(("(state)", f"the saved state ({len(state)} bytes) is over the cap: starting fresh"))
        state = b""
    head = b"".join(manifest)
    fields = (len(head), len(state), int(ws.keep_state), max(0, ws.max_state_bytes))
    return Prepared(
        fields, (head, *bodies, state), tuple(unplaced), tuple(notes), None, ws.keep_state, fields[3]
    )


def _refuse(name: str, seen: set[str], placed: int) -> str | None:
    if not safe_name(name):
        return "unsafe file name: not placed"
    if name in seen:
        return "a second file with this name: not placed"
    if placed >= MAX_FILES_IN:
        return f"more than {MAX_FILES_IN} files: not placed"
    return None


def _b64(name: str) -> bytes:
    import binascii

    return binascii.b2a_base64(name.encode("utf-8", "surrogateescape"), newline=False)


def supervisor_source() -> str:
    """Return supervisor.py with workspace_box.py in front of it as a string, compiled on first use only.

    A string constant costs a cold start next to nothing to parse (and nothing in a precompiled code
    object); the supervisor compiles it when a run has a workspace, a warm slot before READY.
    """
    here = Path(__file__).parent
    box = (here / "workspace_box.py").read_text()
    return f"_WORKSPACE_SOURCE = {box!r}\n" + (here / "supervisor.py").read_text()


def refused(prep: Prepared, isolation: str, layers: dict[str, str | bool]) -> RunResult:
    """The outcome of a run that did not start because its workspace cannot fit."""
    unplaced = prep.unplaced
    return RunResult(error=prep.error, exit_code=1, isolation=isolation, layers=layers, unplaced=unplaced)


def finish(result: RunResult, parsed: Report, prep: Prepared) -> RunResult:
    """Add the workspace's outcome: the new state (only from a run that ended by itself), names, files."""
    unplaced = list(prep.unplaced)
    dropped = list(prep.notes)
    for name, why in parsed.dropped:  # the child's own placement failures are files, not names
        (unplaced if name.startswith("file ") else dropped).append((name.removeprefix("file "), why))
    # A host kill (timeout, output) leaves the previous state: the report may be cut short. A T line is only
    # there when the child finished its report, or when restoring the state ended the child (cleared).
    ended_itself = result.killed_reason in (None, "memory", "cpu")
    saved = parsed.saved_state is not None and prep.keep_state and ended_itself
    if prep.keep_state and not saved:
        note = parsed.state_note or (KILLED_NOTE if result.killed_reason else NO_REPORT_NOTE)
        dropped.append(("(state)", note))
    return dataclasses.replace(
        result,
        state=parsed.saved_state or b"" if saved else b"",
        state_saved=saved,
        kept=parsed.kept if saved else (),
        dropped=tuple(dropped),
        deleted_files=parsed.deleted,
        unplaced=tuple(unplaced),
    )
