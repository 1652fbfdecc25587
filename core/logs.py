"""Log lines: one line per event, text or JSON, with the turn's thread key and id, never a secret.

The thread key and turn id live in a contextvar set where a turn starts; asyncio copies the context into
every task the turn creates, so each line logged on its behalf carries them without passing them around.
Secrets are scrubbed from the finished line (message, arguments, extras and tracebacks alike).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

LogFormat = Literal["text", "json"]

MAX_ID_CHARS = 120  # thread keys and turn ids come from chat payloads: bounded before they reach a line
REDACTED = "[redacted]"


# The current turn's {"thread": ..., "turn": ...}, added to every line logged on its behalf.
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("codebot_log", default=None)


def _clean_id(value: str) -> str:
    printable = "".join(ch for ch in value if ch.isprintable() and not ch.isspace())
    return printable[:MAX_ID_CHARS]


@contextlib.contextmanager
def turn_context(thread: str, turn: str) -> Iterator[None]:
    """Tag every log line of the current task (and the tasks it starts) with a thread key and turn id."""
    token = _context.set({"thread": _clean_id(thread), "turn": _clean_id(turn)})
    try:
        yield
    finally:
        _context.reset(token)


# Token shapes of the services the bot talks to, for secrets that are not in Settings (a token pasted
# into an error message by a server, a key in a URL). Settings' own secret values are added exactly.
_PATTERNS = (
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"),  # Slack bot/user/config tokens
    re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"),  # Slack app-level tokens
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),  # OpenAI-style API keys
    re.compile(r"(?i)\b(bearer|bot)\s+(?=\S*\d)[A-Za-z0-9._~+/=-]{16,}"),  # Authorization header values
    re.compile(r"\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),  # Discord bot tokens
    re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.-]{20,}"),  # Discord interaction tokens in URLs
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&]{6,}"),
)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")  # postgresql://user:PASSWORD@host/db


class Scrubber:
    """Removes known secret values and token-shaped strings from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole. Short values would blank
        # ordinary words, and no real token is that short.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
        for pattern in _PATTERNS:
            text = pattern.sub(_keep_prefix, text)
        return text


def _keep_prefix(m: re.Match[str]) -> str:
    # Patterns with a group keep it ("token=", "Bearer ") so the line still says what was removed.
    return (m.group(1) + (" " if m.group(1).isalpha() else "") + REDACTED) if m.groups() else REDACTED


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [thread=... turn=...]`, newlines escaped so one event is one line."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {**(_context.get() or {}), **_extras(record)}
        if extras:
            line += " [" + " ".join(f"{k}={v}" for k, v in extras.items()) + "]"
        # A chat message in a log line must not be able to forge the next line.
        return self._scrub(line.replace("\r", "\\r").replace("\n", "\\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, thread, turn, exc, and any `extra=` fields."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context.get() or {})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        # Secrets are plain ASCII tokens that JSON escaping leaves alone, so scrubbing the line is enough.
        return self._scrub(json.dumps(entry, default=str, ensure_ascii=False))


_OURS = "_codebot_handler"


def configure_logging(
    level: int, fmt: LogFormat, secrets: Iterable[str] = (), stream: Any = None
) -> logging.Handler:
    """Send every logger's records to one stderr handler in the chosen format; idempotent."""
    scrub = Scrubber(secrets)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(scrub) if fmt == "json" else TextFormatter(scrub))
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
