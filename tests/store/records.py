"""Builders for the store's values, so each test states only what it is about."""

from __future__ import annotations

from collections.abc import Sequence

from core.store.base import AuditRecord, Turn, UsageRecord, Workspace
from core.types import ThreadKey

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")
WS = Workspace.of(KEY)


def key(thread: str, *, workspace: str = "T1", channel: str = "C1", platform: str = "slack") -> ThreadKey:
    """Return a thread key that differs from KEY only where asked."""
    return ThreadKey(platform, workspace, channel, thread)


def audit_record(
    k: ThreadKey = KEY, *, step: int = 1, code: str = "print(1)", at: float = 1000.0, user: str = "U1"
) -> AuditRecord:
    """Return an allowed, successful execution record."""
    return AuditRecord(
        key=k,
        user_id=user,
        at=at,
        step=step,
        code=code,
        allowed=True,
        risk="low",
        reasons="",
        outcome="ok",
        exit_code=0,
        duration_ms=12.5,
    )


def turn(
    k: ThreadKey,
    event_id: str,
    messages: Sequence[str],
    *,
    audits: Sequence[AuditRecord] = (),
    at: float = 1000.0,
    user: str = "U1",
    tokens: int = 0,
) -> Turn:
    """Return a turn whose usage counts one question and one run per audit record."""
    usage = UsageRecord(Workspace.of(k), user, at, runs=len(audits), tokens=tokens)
    return Turn(key=k, event_id=event_id, messages=tuple(messages), audits=tuple(audits), usage=usage)
