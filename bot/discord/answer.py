"""The model's answer as Discord markdown, minus anything that could pass for the bot's own. Pure."""

from __future__ import annotations

import re

from core.text import deceptive_link, mimics_bot_line, plain_words

_MASKED_LINK = re.compile(
    r"\[([^\[\]\n]{0,300})\]\(\s*<?([a-z][a-z0-9+.-]*:[^\s)>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)", re.I
)
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")
_MD_SPECIAL = re.compile(r"([*_~`|>#\\\[\]()<-])")


def answer_markdown(text: str) -> str:
    """Keep the model's markdown, but show lines dressed as the bot's verdict or result lines as plain
    quoted text, and unmask links whose label is another address. Code blocks are left as written."""
    lines, in_fence = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            lines.append(line)
        elif in_fence:
            lines.append(line)
        elif mimics_bot_line(line):
            lines.append("“" + _MD_SPECIAL.sub(r"\\\1", plain_words(line)) + "”")
        else:
            lines.append(_unmask(line))
    return "\n".join(lines)


def _unmask(line: str) -> str:
    parts = _INLINE_CODE.split(line)  # inline code shows links as text already
    return "".join(p if _INLINE_CODE.fullmatch(p) else _MASKED_LINK.sub(_link, p) for p in parts)


def _link(m: re.Match[str]) -> str:
    label, url = m.group(1), m.group(2)
    return f"{label} (<{url}>)" if deceptive_link(label, url) else m.group(0)
