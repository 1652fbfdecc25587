"""Attached file names land as plain, visible, bounded, unique base names."""

from __future__ import annotations

import pytest

from core.threadfiles.names import MAX_NAME_BYTES, MAX_NAME_CHARS, safe_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../x.csv", "x.csv"),
        ("..\\..\\windows\\x.csv", "x.csv"),
        ("/etc/passwd", "passwd"),
        (".bashrc", "bashrc"),
        ("..", "file"),
        ("", "file"),
        ("  . hidden.txt ", "hidden.txt"),
        ("a\x00b\nc.csv", "a_b_c.csv"),
        ("rep`ort`.csv", "rep_ort_.csv"),
        ("données 2024.xlsx", "données 2024.xlsx"),
        ("\u202egnp.exe", "gnp.exe"),  # a right-to-left override would disguise the extension
        ("a\x85b\u00a0c\x9b.txt", "a b c_.txt"),  # C1 controls and odd spaces are not printable
    ],
)
def test_names_are_made_safe(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = safe_name("x" * 500 + ".csv")
    assert len(name) == MAX_NAME_CHARS and name.endswith(".csv")
    wide = safe_name("😀" * 100 + ".csv")  # 4 bytes each: the byte bound cuts first
    assert len(wide.encode()) <= MAX_NAME_BYTES and wide.endswith(".csv") and wide.startswith("😀")


def test_clashing_names_get_a_number_before_the_extension() -> None:
    taken = {"data.csv", "data (2).csv"}
    assert safe_name("data.csv", taken) == "data (3).csv"
    assert safe_name("../data.csv", {"data.csv"}) == "data (2).csv"
    long = safe_name("y" * 300 + ".csv")
    again = safe_name("y" * 300 + ".csv", {long})
    assert len(again) <= MAX_NAME_CHARS and again.endswith(" (2).csv") and again != long
