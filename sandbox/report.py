"""Read the supervisor's report (sandbox/supervisor.py) as untrusted bytes: bounded, strict, never raising.

The report comes from the supervisor, on an fd the code never holds; it is parsed as untrusted anyway. It
carries the child's exit status (from the supervisor's own waitpid), the `result` repr, the error text,
the exception type and the files the code left behind.
"""

from __future__ import annotations

import asyncio
import binascii
from dataclasses import dataclass, field

from sandbox.hostfs import sanitise
from sandbox.types import KeptName, OutputFile, RunLimits
from sandbox.workspace_names import parse_dropped, parse_kept

LINE_MAX = 512 * 1024  # a report line: three base64 fields of at most ~40 KB of UTF-8 each
FIELD_CHARS = 20_000  # the supervisor caps result and error at 10,000 characters (plus a marker)
NAME_MAX = 4096
_STATES = {b"R": "ok", b"N": "missing", b"X": "malformed"}
STATE_SLACK = 512 * 1024  # a forged state length may reach past the cap by the supervisor's tail slack


@dataclass(frozen=True)
class Report:
    """What the supervisor said; `state` is "ok", "missing" (none came) or "malformed" (ignored).

    `status` is the exit status from the final `E` line, None when the report did not end properly.
    """

    state: str = "missing"
    status: int | None = None
    exc_type: str | None = None
    result: str | None = None
    error: str | None = None
    files: tuple[OutputFile, ...] = ()
    skipped: tuple[str, ...] = ()
    # workspace runs only: the saved state (None: none was saved), and what the child said about names
    saved_state: bytes | None = None
    state_note: str | None = None  # why a state that was saved did not arrive
    kept: tuple[KeptName, ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()
    deleted: tuple[str, ...] = ()  # placed files the run removed


@dataclass
class _Workspace:
    saved_state: bytes | None = None
    state_note: str | None = None
    kept: tuple[KeptName, ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()
    deleted: list[str] = field(default_factory=list)


async def read(reader: asyncio.StreamReader, limits: RunLimits, max_state_bytes: int = 0) -> Report:
    """Read one report up to its `E` line; anything malformed or over a cap yields state "malformed"."""
    try:
        return await _read(reader, limits, max_state_bytes)
    except (ValueError, binascii.Error, UnicodeError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return Report(state="malformed")


async def _read(reader: asyncio.StreamReader, limits: RunLimits, max_state: int) -> Report:
    first = await _line(reader)
    if first is None:
        return Report()  # EOF before anything: the sandbox died
    kind, _, rest = first.partition(b" ")
    if kind not in _STATES or (kind != b"R" and rest):
        raise ValueError("bad report line")
    state = _STATES[kind]
    exc_type, result, error = _fields(rest) if kind == b"R" else (None, None, None)
    files: list[OutputFile] = []
    skipped: list[str] = []
    ws = _Workspace()
    total = 0
    while (line := await _line(reader)) is not None:
        kind, _, rest = line.partition(b" ")
        if kind == b"E":
            status = _number(rest, 255)
            return Report(
                state, status, exc_type, result, error, tuple(files), tuple(skipped), ws.saved_state,
                ws.state_note, ws.kept, ws.dropped, tuple(ws.deleted),
            )  # fmt: skip
        if len(files) + len(skipped) >= limits.max_files + 10_000:
            raise ValueError("too many entries")
        if kind in (b"K", b"T", b"D"):
            await _workspace_line(reader, kind, rest, ws, max_state)
            continue
        if kind == b"S":
            skipped.append(_name(rest))
            continue
        if kind != b"F":
            raise ValueError("unexpected line")
        raw, size_text = rest.split(b" ")
        size = _number(size_text, limits.max_file_bytes)  # the supervisor never sends more
        body = await reader.readexactly(size)
        name = _name(raw)
        if len(files) < limits.max_files and total + size <= limits.max_files_total_bytes:
            files.append(OutputFile(name=name, data=body))
            total += size
        else:
            skipped.append(name)
    raise ValueError("the report did not end")


async def _workspace_line(
    reader: asyncio.StreamReader, kind: bytes, rest: bytes, ws: _Workspace, max_state: int
) -> None:
    """K kept dropped: the names; T size + bytes (or T -): the state; D name: a placed file removed."""
    if kind == b"K":
        kept, dropped = rest.split(b" ")
        ws.kept, ws.dropped = parse_kept(_token(kept)), parse_dropped(_token(dropped))
    elif kind == b"D":
        if len(ws.deleted) >= 10_000:
            raise ValueError("too many entries")
        ws.deleted.append(_name(rest))
    elif rest == b"-":
        ws.state_note = "the state was too large for the sandbox's channel and was not kept"
    else:
        size = _number(rest, max_state + STATE_SLACK)
        body = await reader.readexactly(size)
        if size > max_state:  # only a forged report claims that much: the real child caps it
            ws.state_note = f"the state ({size} bytes) is over the cap of {max_state} bytes and was not kept"
        else:
            ws.saved_state = body


def _token(part: bytes) -> str:
    return "" if part == b"-" else _text(part)


async def _line(reader: asyncio.StreamReader) -> bytes | None:
    """Return the next line without its newline, None at EOF; LimitOverrunError past the reader's limit."""
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b"\n") or len(line) > LINE_MAX:
        raise ValueError("unterminated or long line")
    return line[:-1]


def _fields(rest: bytes) -> tuple[str | None, str | None, str | None]:
    parts = rest.split(b" ")
    if len(parts) != 3:
        raise ValueError("a report line has three fields")
    values = [None if p == b"-" else _text(p)[:FIELD_CHARS] for p in parts]
    return values[0], values[1], values[2]


def _text(part: bytes) -> str:
    return binascii.a2b_base64(part, strict_mode=True).decode("utf-8", "replace")


def _number(text: bytes, most: int) -> int:
    if not text.isdigit() or len(text) > 12 or int(text) > most:
        raise ValueError("bad number")
    return int(text)


def _name(raw: bytes) -> str:
    if len(raw) > NAME_MAX:
        raise ValueError("name too long")
    return sanitise(_text(raw))
