"""Calendar boundaries and human wording of times; everything is UTC so every replica agrees."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

DAY_S = 86_400.0


def _dt(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def day_start(now: float) -> float:
    """Return the UNIX time of the UTC midnight that began the current day."""
    d = _dt(now)
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def week_start(now: float) -> float:
    """Return the UNIX time of the UTC midnight that began this week (weeks start on Monday)."""
    return day_start(now) - _dt(now).weekday() * DAY_S


def day_key(now: float) -> str:
    """Return the UTC date, e.g. "2026-11-26"; used to name per-day buckets."""
    return _dt(now).strftime("%Y-%m-%d")


def in_words(seconds: float) -> str:
    """Say a wait the way people do, rounded up: "45 s", "12 min", "3 h 5 min"."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def clock_time(at: float, now: float) -> str:
    """Name a moment within the next days: "14:05 UTC", or "14:05 UTC tomorrow"."""
    when = _dt(math.ceil(at / 60) * 60)  # round up so the promised minute is never too early
    days = (when.date() - _dt(now).date()).days
    suffix = {0: "", 1: " tomorrow"}.get(days, f" on {when:%a %d %b}")
    return f"{when:%H:%M} UTC{suffix}"


def stamp(at: float) -> str:
    """Format a moment for logs and tables: "2026-11-26 14:03 UTC"."""
    return f"{_dt(at):%Y-%m-%d %H:%M} UTC"


def iso(at: float) -> str:
    """Format a moment as ISO 8601 in UTC, for exports."""
    return _dt(at).isoformat(timespec="seconds")


def next_midnight(now: float) -> float:
    """Return the UNIX time of the next UTC midnight."""
    return (datetime.fromtimestamp(day_start(now), UTC) + timedelta(days=1)).timestamp()
