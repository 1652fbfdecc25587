"""Lone surrogates are replaced; everything else, including real emoji, is left exactly as it was."""

from __future__ import annotations

import pytest

from core.text import duration, scrub_surrogates


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain ascii", "plain ascii"),
        ("🚀 √2 平方根 Ответ", "🚀 √2 平方根 Ответ"),
        ("half \ud83d of a rocket", "half \ufffd of a rocket"),
        ("\udcff\udcfe", "\ufffd\ufffd"),
        ("", ""),
    ],
)
def test_scrub_surrogates(raw: str, clean: str):
    assert scrub_surrogates(raw) == clean
    scrub_surrogates(raw).encode("utf-8")  # always encodable afterwards


@pytest.mark.parametrize(
    ("ms", "shown"), [(0.0, "<1 ms"), (0.4, "<1 ms"), (1.0, "1 ms"), (340.2, "340 ms"), (2430.0, "2.4 s")]
)
def test_run_durations_read_naturally(ms: float, shown: str):
    assert duration(ms) == shown
