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


_URLISH = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b", re.I)
_SHORTCODE = re.compile(r":[a-z0-9_+-]+:", re.I)
_MARKUP = re.compile(r"[*_~`|>#\\]")
# How the bot's own step lines begin (verdicts, results, code headers), after emoji and markup.
_BOT_LINE = re.compile(
    r"(?:step \d+\s*·|code\s*·\s*step \d+|(?:safety )?review\s*:\s*(?:allowed|refused)\b|review off\b"
    r"|safety review\b|ran ok\b|ran in \d|timed out\b|killed\s*\(|stopped:|failed\s*·|error after \d"
    r"|exited with code \d|result \(step)",
    re.I,
)


def deceptive_link(label: str, url: str) -> bool:
    """True when a link's label reads as an address other than the one it opens.

    `[https://slack.com/verify](https://evil.example)` must not render as a link: a reader trusts the
    label. A label that is plain words, or the same address, is fine.
    """
    found = _URLISH.search(label)
    if found is None:
        return False
    shown = _address(found.group(0))
    target = _address(url)
    return shown != target and shown != target.split("/", 1)[0]


def _address(text: str) -> str:
    text = text.strip().strip("<>").lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    return text.removeprefix("www.").rstrip("/")


def mimics_bot_line(line: str) -> bool:
    """True when a line of model text would read like one of the bot's own verdict or result lines."""
    return _BOT_LINE.match(plain_words(line)) is not None


def plain_words(line: str) -> str:
    """The line without emoji, :shortcodes: and markdown markers: what it says, not how it looks."""
    text = _MARKUP.sub("", _SHORTCODE.sub("", line))
    start = next((i for i, ch in enumerate(text) if ch.isalnum()), len(text))
    return " ".join(text[start:].split())
