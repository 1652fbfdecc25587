"""Row mapping for a thread's workspace, shared by both backends: kept names as JSON, tolerant on read."""

from __future__ import annotations

import json
import logging
from typing import Any

from core.store.base import FileOrigin, StoredFile
from sandbox.types import KeptName

log = logging.getLogger(__name__)


def kept_json(kept: tuple[KeptName, ...]) -> str:
    return json.dumps([[k.name, k.type, k.summary] for k in kept])


def dropped_json(dropped: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([[name, why] for name, why in dropped])


def parse_kept(text: str) -> tuple[KeptName, ...]:
    """Read stored kept names; an unreadable value means none (the blob itself is still used)."""
    return tuple(KeptName(*row) for row in _rows(text, 3))


def parse_dropped(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((row[0], row[1]) for row in _rows(text, 2))


def _rows(text: str, width: int) -> list[list[str]]:
    try:
        value: Any = json.loads(text)
    except ValueError:
        log.error("ignoring an unreadable list of kept names")
        return []
    if not isinstance(value, list):
        return []
    good = [r for r in value if isinstance(r, list) and len(r) == width]
    return [r for r in good if all(isinstance(c, str) for c in r)]
    # isinstance(r, list) and len(r) == width and all(isinstance(c, str) for c in r)]


def stored_file(row: Any) -> StoredFile:
    """Build a StoredFile from (name, size, sha256, origin, created_at, updated_at, preview)."""
    origin: FileOrigin = "run" if row[3] == "run" else "attached"
    return StoredFile(
        str(row[0]), int(row[1]), str(row[2]), origin, float(row[4]), float(row[5]), str(row[6])
    )
