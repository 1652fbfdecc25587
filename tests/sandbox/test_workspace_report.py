"""The host's side of a workspace: what it sends, and how it reads what comes back (untrusted, bounded)."""

from __future__ import annotations

import asyncio
import base64

from sandbox import RunLimits
from sandbox.report import Report, read
from sandbox.types import OutputFile, RunResult, RunWorkspace
from sandbox.workspace import finish, prepare
from sandbox.workspace_names import MAX_ENTRIES, parse_dropped, parse_kept


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


async def parse(data: bytes, max_state: int = 1000) -> Report:
    reader = asyncio.StreamReader(limit=2**20)
    reader.feed_data(data)
    reader.feed_eof()
    return await read(reader, RunLimits(), max_state)


async def test_kept_names_state_and_deleted_files_are_read() -> None:
    kept = b64("df\tDataFrame\tshape (3, 2)\nn\tint\t41")
    dropped = b64("fh\tnot kept: TypeError")
    data = b"R - - -\nK " + kept + b" " + dropped + b"\nT 5\nSTATED " + b64("gone.csv") + b"\nE 0\n"
    got = await parse(data)
    assert got.state == "ok" and got.saved_state == b"STATE"
    assert [(k.name, k.type, k.summary) for k in got.kept] == [
        ("df", "DataFrame", "shape (3, 2)"),
        ("n", "int", "41"),
    ]
    assert got.dropped == (("fh", "not kept: TypeError"),) and got.deleted == ("gone.csv",)


async def test_a_forged_state_over_the_cap_is_read_past_and_not_kept() -> None:
    got = await parse(b"R - - -\nT 2000\n" + b"x" * 2000 + b"E 0\n", max_state=1000)
    assert got.state == "ok" and got.saved_state is None
    assert got.state_note is not None and "over the cap of 1000 bytes" in got.state_note
    far = await parse(b"R - - -\nT 99999999\n", max_state=1000)  # past the slack: the report is refused
    assert far.state == "malformed" and far.saved_state is None


async def test_a_state_the_supervisor_could_not_carry_is_named() -> None:
    got = await parse(b"R - - -\nK - -\nT -\nE 0\n")
    assert got.saved_state is None and got.state_note is not None and got.kept == ()


async def test_malformed_workspace_lines_never_raise() -> None:
    for data in (
        b"R - - -\nK !!!\nE 0\n",
        b"R - - -\nK - - -\nE 0\n",
        b"R - - -\nT 10\nabc",
        b"R - - -\nT x\n",
    ):
        got = await parse(data)
        assert got.state == "malformed" and got.saved_state is None


def test_names_from_the_sandbox_are_bounded_and_printable() -> None:
    lines = [f"v{i}\tint\t{i}" for i in range(MAX_ENTRIES + 50)]
    lines[0] = "not a name\tint\t1"
    lines[1] = "evil\tstr\t" + "\x1b[31m<@here>\n" + "y" * 1000
    kept = parse_kept("\n".join(lines))
    assert len(kept) < MAX_ENTRIES and all(k.name.isidentifier() for k in kept)
    evil = next(k for k in kept if k.name == "evil")
    assert evil.summary.isprintable() and len(evil.summary) <= 200
    assert parse_dropped("x\ty\tz\n\tno name\nok\twhy") == (("ok", "why"),)


def test_prepare_skips_bad_and_duplicate_names_and_a_state_over_the_cap() -> None:
    files = (
        OutputFile("a.csv", b"1"),
        OutputFile("a.csv", b"2"),
        OutputFile("../x", b"3"),
        OutputFile("sub/x", b"4"),
        OutputFile("", b"5"),
        OutputFile("\ud800.csv", b"6"),
        OutputFile("tab\there", b"7"),
    )
    prep = prepare(
        RunWorkspace(files=files, state=b"s" * 20, max_state_bytes=10, keep_state=True), RunLimits()
    )
    assert prep.error is None
    assert [name for name, _ in prep.unplaced] == ["a.csv", "../x", "sub/x", "", "\ud800.csv", "tab\there"]
    assert prep.pieces == (b64("a.csv") + b" 1\n", b"1", b"")  # manifest, the one file, no state
    assert prep.notes and "over the cap" in prep.notes[0][1]


def test_prepare_refuses_files_over_the_disk_cap() -> None:
    prep = prepare(RunWorkspace(files=(OutputFile("big", b"x" * (2 << 20)),)), RunLimits(output_dir_mb=1))
    assert prep.error is not None and "output_dir_mb = 1 MB" in prep.error


def test_a_killed_run_never_hands_back_a_state() -> None:
    prep = prepare(RunWorkspace(keep_state=True), RunLimits())
    parsed = Report(state="ok", status=137, saved_state=b"late")
    got = finish(RunResult(killed_reason="timeout", timed_out=True), parsed, prep)
    assert not got.state_saved and got.state == b""
    assert dict(got.dropped)["(state)"].startswith("the run was stopped")
    ok = finish(RunResult(), parsed, prep)
    assert ok.state_saved and ok.state == b"late"
