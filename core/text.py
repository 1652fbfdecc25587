"""Text hygiene for strings that arrive from outside (the model, chat platforms)."""

from __future__ import annotations

import re


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


# C0 controls except \t and \n, DEL, C1 controls, and the bidi overrides that reorder what a reader sees.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    r"""Show control characters as escapes (\r, \x1b, \u202e) so text cannot drive a terminal.

    A program's output reaching a terminal raw could rewrite the line above (\r, ESC[2K) to forge the
    bot's verdict, set the clipboard (OSC 52) or plant links (OSC 8). Newlines and tabs stay as they are.
    """
    return _CONTROLS.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f", "\x00": "\\0"}.get(ch)
    if named:
        return named
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
