"""Slack mrkdwn text helpers: escaping, mention neutralising, code fences and splitting. Pure."""

from __future__ import annotations

import re
from typing import Any

from core.text import deceptive_link, mimics_bot_line, plain_words

FENCE = "```"
ZWSP = "\u200b"
_FENCE_OVERHEAD = len(f"{FENCE}\n\n{FENCE}")
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_TICK_RUN = re.compile(r"`{2,}")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


def escape(text: str) -> str:
    """Escape the three characters Slack treats as markup (&, <, >); this also defuses <!here> etc."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def neutralise(text: str) -> str:
    """Break bare @here/@channel/@everyone so no client setting (link_names) turns them into pings."""
    return _BROADCAST.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)


def prose(text: str) -> str:
    """Make untrusted text safe to show as mrkdwn prose."""
    return neutralise(escape(text))


def code_safe(escaped: str) -> str:
    """Keep text inside a code fence: no run of two or more backticks survives to close it."""
    return _TICK_RUN.sub(lambda m: ZWSP.join(m.group(0)), escaped)


def cost(raw: str) -> int:
    """Upper bound of the length `raw` takes once escaped and made code-safe."""
    return len(escape(raw)) + raw.count("`")


def clip(text: str, limit: int) -> str:
    """Shorten already-escaped text to `limit` characters without cutting an &entity;."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    head = _ENTITY_TAIL.sub("", head)
    return head + "…"


def human_size(n: int) -> str:
    """Format a byte count for people."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _split_raw(raw: str, limit: int) -> list[str]:
    """Split raw text at line ends into pieces whose escaped cost stays within `limit`."""
    pieces: list[str] = []
    current, used = "", 0
    for line in raw.splitlines(keepends=True):
        while cost(line) > limit:  # one line longer than a section: cut it by characters
            if current:
                pieces.append(current)
                current, used = "", 0
            n, acc = 0, 0
            while n < len(line) and acc + cost(line[n]) <= limit:
                acc += cost(line[n])
                n += 1
            n = max(n, 1)  # always make progress, even under an absurdly small limit
            pieces.append(line[:n])
            line = line[n:]
        if used + cost(line) > limit and current:
            pieces.append(current)
            current, used = "", 0
        current += line
        used += cost(line)
    if current:
        pieces.append(current)
    return pieces


def fenced_sections(raw: str, budget: int, section_chars: int) -> tuple[list[dict[str, Any]], bool]:
    """Render raw text as code-fenced sections, at most `budget` characters in all.

    Returns the section blocks and whether the text was cut short.
    """
    if not raw.strip():
        return [{"type": "section", "text": {"type": "mrkdwn", "text": "_(empty)_"}}], False
    per_section = section_chars - _FENCE_OVERHEAD
    blocks: list[dict[str, Any]] = []
    left = budget
    for piece in _split_raw(raw.rstrip("\n"), per_section):
        if left - _FENCE_OVERHEAD <= 0:
            return blocks, True
        body = code_safe(escape(piece.rstrip("\n")))
        cut = len(body) > left - _FENCE_OVERHEAD
        if cut:
            body = code_safe(clip(escape(piece), left - _FENCE_OVERHEAD))
        text = f"{FENCE}\n{body}\n{FENCE}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        left -= len(text)
        if cut:
            return blocks, True
    return blocks, False


def _inline(line: str) -> str:
    """Convert one escaped Markdown prose line to mrkdwn, leaving inline code alone."""
    heading = re.match(r"#{1,6}\s+(.*)", line)
    if heading:
        line = f"**{heading.group(1).strip()}**"
    line = re.sub(r"^(\s*)[-*]\s+", r"\1• ", line)
    out = []
    for part in _INLINE_CODE.split(line):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)
            continue
        part = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: f"*{m.group(1) or m.group(2)}*", part)
        part = re.sub(r"~~(.+?)~~", r"~\1~", part)
        part = _LINK.sub(_link, part)
        out.append(neutralise(part))
    return "".join(out)


def _link(m: re.Match[str]) -> str:
    label, url = m.group(1), m.group(2)
    if deceptive_link(label, url):  # the label names another address: show both, link only the real one
        return f"{label} (<{url}>)"
    return f"<{url}|{label.replace('|', '¦')}>"


def _prose_line(line: str) -> str:
    """One escaped prose line; a line dressed up as the bot's own verdict or result is shown plainly."""
    if mimics_bot_line(line):
        return f"“{neutralise(plain_words(line))}”"
    return _inline(line)


def to_mrkdwn(markdown: str) -> str:
    """Turn an LLM's Markdown into safe Slack mrkdwn (escaped, neutralised, fences kept)."""
    lines, in_fence = [], False
    for line in escape(markdown).splitlines():
        if line.lstrip().startswith(FENCE):
            in_fence = not in_fence
            lines.append(FENCE)  # Slack shows a language tag as code, so drop it
            continue
        lines.append(code_safe(line) if in_fence else _prose_line(line))
    if in_fence:
        lines.append(FENCE)
    return "\n".join(lines)


def _hard_split(line: str, limit: int) -> list[str]:
    """Cut an escaped line into pieces of at most `limit` characters, never inside an &entity;."""
    pieces = []
    while len(line) > limit:
        head = _ENTITY_TAIL.sub("", line[:limit]) or line[:limit]
        pieces.append(head)
        line = line[len(head) :]
    pieces.append(line)
    return pieces


def answer_chunks(markdown: str, budget: int, section_chars: int) -> tuple[list[str], bool]:
    """Split a converted answer into section texts, re-opening code fences across a split.

    Returns the chunks (at most `budget` characters in all) and whether the answer was cut short.
    """
    limit = section_chars - _FENCE_OVERHEAD
    chunks: list[str] = []
    current: list[str] = []
    used, total, in_fence = 0, 0, False

    def close() -> None:
        nonlocal current, used
        if current:
            chunks.append("\n".join([*current, FENCE] if in_fence else current))
            current = [FENCE] if in_fence else []
            used = sum(len(x) + 1 for x in current)

    for line in to_mrkdwn(markdown).splitlines():
        for piece in _hard_split(line, limit):
            if total + len(piece) + 1 > budget:
                close()
                return chunks, True
            if used + len(piece) + 1 > limit:
                close()
            current.append(piece)
            used += len(piece) + 1
            total += len(piece) + 1
        if line == FENCE:
            in_fence = not in_fence
    if current and current != [FENCE]:
        in_fence = False
        close()
    return chunks, False


_SLACK_SYNTAX = re.compile(r"<(?=[@#!])")


def markdown_line(line: str, in_fence: bool) -> tuple[str, bool]:
    """One line of the model's Markdown made safe for Slack's markdown block and streams.

    Returns the line and whether a code fence is open after it. Slack's own syntax (<@U1>, <!here>) and
    bare broadcasts are broken everywhere, also in code; outside code a line dressed up as the bot's
    verdict or result is quoted plainly and a link whose label names another address shows both.
    """
    if line.lstrip().startswith(FENCE):
        return line, not in_fence
    line = neutralise(_SLACK_SYNTAX.sub("<" + ZWSP, line))
    if in_fence:
        return line, True
    if mimics_bot_line(line):
        return f"“{plain_words(line)}”", False
    return _LINK.sub(_markdown_link, line), False


def _markdown_link(m: re.Match[str]) -> str:
    label, url = m.group(1), m.group(2)
    return f"{label} ({url})" if deceptive_link(label, url) else m.group(0)


def to_markdown(text: str) -> str:
    """The model's whole answer as safe standard Markdown (see markdown_line)."""
    lines, in_fence = [], False
    for line in text.split("\n"):
        shown, in_fence = markdown_line(line, in_fence)
        lines.append(shown)
    return "\n".join(lines)
