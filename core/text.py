"""Text hygiene for strings that arrive from outside (the model, chat platforms)."""

from __future__ import annotations


def scrub_surrogates(text: str) -> str:
    """Replace lone UTF-16 surrogates (legal in JSON, not encodable as UTF-8) with U+FFFD.

    A model or a chat payload can send "\\ud83d" on its own; left in, it makes every later UTF-8 encode
    (hashing, SQLite, a terminal) raise, which would fail the whole turn.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def duration(ms: float) -> str:
    """How long a run took, for a person: "<1 ms", "340 ms", "2.4 s"."""
    if ms < 1:
        return "<1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"
