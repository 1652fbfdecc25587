"""The audit table's column order and its row -> AuditRecord mapping, shared by both backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.store.base import AuditRecord
from core.types import ThreadKey

AUDIT_COLUMNS = (
    "id, platform, workspace, channel, thread, user_id, at, step, code, allowed, risk, reasons, outcome, "
    "exit_code, duration_ms"
)


def audit_record(row: Sequence[Any]) -> AuditRecord:
    """Build a record from a row selected with AUDIT_COLUMNS."""
    return AuditRecord(
        key=ThreadKey(row[1], row[2], row[3], row[4]),
        user_id=row[5],
        at=row[6],
        step=row[7],
        code=row[8],
        allowed=bool(row[9]),
        risk=row[10],
        reasons=row[11],
        outcome=row[12],
        exit_code=row[13],
        duration_ms=row[14],
        id=row[0],
    )
