"""The host's parser of the supervisor's report: untrusted bytes are bounded, strict, and never raise."""

from __future__ import annotations

import asyncio
import base64

import pytest

from sandbox import RunLimits
from sandbox.report import Report, read


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


async def parse(data: bytes, limits: RunLimits | None = None) -> Report:
    reader = asyncio.StreamReader(limit=2**20)
    reader.feed_data(data)
    reader.feed_eof()
    return await read(reader, limits or RunLimits())


async def test_a_well_formed_report_is_read() -> None:
    data = b"R - " + b64("'x'") + b" -\nF " + b64("a b.txt") + b" 3\nabcS " + b64("../evil") + b"\nE 7\n"
    got = await parse(data)
    assert (got.state, got.status, got.result, got.exc_type) == ("ok", 7, "'x'", None)
    assert [(f.name, f.data) for f in got.files] == [("a_b.txt", b"abc")]
    assert got.skipped == ("_evil",)  # names are sanitised again on the host


@pytest.mark.parametrize(
    "data",
    [
        b"junk\n",
        b"R - - -\nE not-a-number\n",
        b"R - - -\nE 300\n",  # not a wait status
        b"R - - -\nE -1\n",
        b"R !!! - -\nE 0\n",  # not base64
        b"R - -\nE 0\n",  # a field short
        b"R - - -\nF " + b64("a") + b" 10\nabc",  # a file cut short
        b"R - - -\nF " + b64("a") + b" 99999999999\n",  # over the per-file cap
        b"R - - -\nF " + b64("a") + b" x\n",
        b"R - - -\n" + b"S " + b64("a") + b"\n" * 20,  # no end
        b"R - - - " + b"A" * (2**21) + b"\n",  # a line past the reader's limit
        b"X\nE 0\n",
        b"",
    ],
)
async def test_malformed_or_truncated_reports_never_raise(data: bytes) -> None:
    got = await parse(data)
    assert got.state in ("malformed", "missing") and got.files == () and got.result is None


async def test_entries_past_the_caps_are_skipped_or_refused() -> None:
    limits = RunLimits(max_files=1, max_files_total_bytes=4)
    two = b"F " + b64("a") + b" 3\nabcF " + b64("b") + b" 3\nxyz"
    got = await parse(b"R - - -\n" + two + b"E 0\n", limits)
    assert [f.name for f in got.files] == ["a"] and got.skipped == ("b",)
    flood = b"".join(b"S " + b64(f"n{i}") + b"\n" for i in range(limits.max_files + 10_001))
    assert (await parse(b"R - - -\n" + flood + b"E 0\n", limits)).state == "malformed"
