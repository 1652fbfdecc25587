"""Bound the history sent to the model: by message count and an approximate token budget."""

from __future__ import annotations

from collections.abc import Sequence

from mirascope import llm

CHARS_PER_TOKEN = 4  # rough; good enough to keep a request well inside a context window


def approx_tokens(message: llm.Message) -> int:
    """Estimate a message's size in tokens from its text."""
    content = message.content if isinstance(message.content, list) else [message.content]
    chars = 0
    for part in content:
        for attr in ("text", "args", "result"):
            value = getattr(part, attr, None)
            if value is not None:
                chars += len(str(value))
    return chars // CHARS_PER_TOKEN + 4


def _starts_exchange(message: llm.Message) -> bool:
    """True for a user message carrying text, not the output of an earlier tool call."""
    if message.role != "user":
        return False
    return not any(getattr(part, "type", "") == "tool_output" for part in message.content)


def _is_failure_note(message: llm.Message) -> bool:
    """An "(no answer: ...)" note that older versions stored as if the assistant had said it."""
    if message.role != "assistant" or len(message.content) != 1:
        return False
    text = getattr(message.content[0], "text", None)
    return isinstance(text, str) and text.startswith("(no answer: ") and text.endswith(")")


def trim_history(messages: Sequence[llm.Message], max_messages: int, max_tokens: int) -> list[llm.Message]:
    """Drop the oldest messages until both bounds hold, cutting only where an exchange starts.

    A tool output whose call was dropped would make the next request invalid, so the kept history
    always begins with a plain user message. Failure notes stored by older versions are left out: the
    model must not read them as its own words.
    """
    clean = [m for m in messages if not _is_failure_note(m)]
    kept = clean[-max_messages:] if max_messages > 0 else []
    total = sum(approx_tokens(m) for m in kept)
    while kept and (total > max_tokens or not _starts_exchange(kept[0])):
        total -= approx_tokens(kept.pop(0))
    return kept
