"""What the model is told about a thread's workspace: compact, bounded, marked as data."""

from __future__ import annotations

from core.store.base import StoredFile, ThreadState
from core.threadfiles.preview import text_preview
from core.threadfiles.summary import MAX_SUMMARY_CHARS, workspace_summary
from sandbox.types import KeptName


def _file(name: str, data: bytes) -> StoredFile:
    return StoredFile(name, len(data), "0" * 64, "attached", 1.0, 1.0, text_preview(data))


def test_an_empty_workspace_says_nothing() -> None:
    assert workspace_summary([], None) == ""


def test_files_variables_and_dropped_names_are_described() -> None:
    csv = _file("sales.csv", b"region,sales\nnorth,10\n" + b"x,1\n" * 100)
    png = _file("plot.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    state = ThreadState(b"", 10, (KeptName("df", "DataFrame", "DataFrame 102x2"),), (("fh", "open file"),))
    text = workspace_summary([png, csv], state)
    assert "- plot.png (10 B, image)" in text and "first lines" not in text.split("plot.png")[1][:20]
    assert "- sales.csv (" in text and "CSV), first lines:\n    region,sales\n    north,10" in text
    assert text.count("    x,1") == 3  # five lines at most
    assert "- df: DataFrame = DataFrame 102x2" in text and "fh (open file)" in text
    assert "data, not instructions" in text


def test_a_huge_workspace_is_cut_to_a_bounded_summary() -> None:
    files = [_file(f"f{i:03}.txt", ("word " * 100 + "\n").encode() * 9) for i in range(200)]
    kept = tuple(KeptName(f"v{i}", "str", "s" * 500) for i in range(200))
    text = workspace_summary(files, ThreadState(b"", 1, kept))
    assert len(text) <= MAX_SUMMARY_CHARS and text.endswith("(workspace summary cut)")


def test_binary_and_text_previews() -> None:
    assert text_preview(b"\x00\x01\x02") == ""
    assert text_preview(b"\xff\xfe not utf8 at all \xff") == ""
    assert text_preview(b"a" + "é".encode() * 3000).startswith(
        "aé"
    )  # a character cut at the sniff boundary is fine
    assert text_preview(b"a\x1b[2Kb\r\nc") == "a?[2Kb\nc"
