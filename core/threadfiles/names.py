"""Safe names for files in a thread's workspace: plain base names, bounded, never hidden, unique."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

MAX_NAME_CHARS = 100
MAX_NAME_BYTES = 200  # well under the 255 bytes of a file name, with room for " (N)"
FALLBACK = "file"
# Path separators, NUL and the characters shells and chat markup trip over.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f<>:\"|?*`]")
_SPACES = re.compile(r"\s+")


def safe_name(raw: str, taken: Collection[str] = ()) -> str:
    """Turn an untrusted file name into a base name that is safe in a directory and not in `taken`.

    The last path component is kept ("../../x.csv" -> "x.csv"), separators and control characters
    become "_", leading dots and spaces go (no hidden files, no "." or ".."), the length is bounded with
    the extension kept, and a clash gets " (2)", " (3)"... before the extension.
    """
    text = unicodedata.normalize("NFC", raw.replace("\\", "/")).split("/")[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cs", "Co", "Cn"))
    text = _SPACES.sub(" ", _UNSAFE.sub("_", text))
    text = "".join(ch if ch.isprintable() else "_" for ch in text).strip().lstrip(". ").rstrip(". ")
    name = _bounded(text or FALLBACK, MAX_NAME_CHARS)
    return _unique(name, set(taken))


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10:
        return name, ""
    return stem, "." + ext


def _bounded(name: str, limit: int) -> str:
    if len(name) <= limit and len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, ext = _split(name)
    return _fit(stem, ext, limit)


def _fit(stem: str, tail: str, limit: int) -> str:
    """Cut `stem` so stem + tail is within `limit` characters and MAX_NAME_BYTES of UTF-8."""
    stem = stem[: max(limit - len(tail), 1)]
    while len(stem) > 1 and len((stem + tail).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem.rstrip(". ") + tail


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, ext = _split(name)
    n = 2
    while True:
        candidate = _fit(stem, f" ({n}){ext}", MAX_NAME_CHARS)
        if candidate not in taken:
            return candidate
        n += 1
