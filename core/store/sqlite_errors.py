"""Turn sqlite3 errors into StoreError messages a chat user or an operator can act on."""

from __future__ import annotations

import sqlite3

from core.store.base import StoreError

# Primary result codes (https://sqlite.org/rescode.html); extended codes keep these in the low byte.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN = 3, 5, 6, 8, 10, 11, 13, 14
_CONSTRAINT, _NOTADB = 19, 26


def locked_error(path: str) -> StoreError:
    """Build the error for a database another process holds locked past the busy timeout."""
    return StoreError(
        f"the database file is locked by another process (CODEBOT_DB={path}); try again shortly"
    )


def corrupt_error(path: str, detail: str = "") -> StoreError:
    """Build the error for a file that is not (or no longer) a usable codebot database."""
    why = f" ({detail})" if detail else ""
    return StoreError(f"{path} is not a codebot database or is corrupt{why}; move it aside and restart")


def translate(exc: sqlite3.Error, path: str) -> StoreError:
    """Map a driver error to a short StoreError naming the cause and, where useful, the fix."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (_BUSY, _LOCKED):
        return locked_error(path)
    if code == _FULL:
        return StoreError(f"the disk holding the database is full (CODEBOT_DB={path}); free some space")
    if code in (_CORRUPT, _NOTADB):
        return corrupt_error(path)
    if code in (_CANTOPEN, _PERM, _READONLY):
        return StoreError(
            f"cannot open or write the database file (CODEBOT_DB={path}); "
            "check that its directory exists and is writable"
        )
    if code == _IOERR:
        return StoreError(
            f"the database file could not be read or written (CODEBOT_DB={path}): I/O error; "
            "check the disk's free space, file size limits and health"
        )
    if code == _CONSTRAINT or isinstance(exc, sqlite3.IntegrityError):
        # SQLite names the column or check that failed; it never includes the values.
        return StoreError(f"the store rejected an invalid record ({exc})")
    return StoreError(f"database error ({exc})")
