"""The store time of one turn, summed across the turn's tasks through a context variable.

Codebot.submit opens a tally before the event's claim; the turn's task (and the lease and slot renewers
it starts) inherit it, the metered store adds each call's seconds, and the turn's observer records the
total (codebot_turn_store_seconds), so the store overhead per turn has a p50, not only a mean per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class TurnCost:
    """Mutable, private to one turn: the seconds its store calls took so far."""

    seconds: float = 0.0


_current: ContextVar[TurnCost | None] = ContextVar("codebot_turn_cost", default=None)


@contextmanager
def tally() -> Iterator[TurnCost]:
    """Count store calls made in this context, and in tasks started from it, into a fresh TurnCost."""
    token = _current.set(cost := TurnCost())
    try:
        yield cost
    finally:
        _current.reset(token)  # the caller's context (an adapter's loop) keeps counting nothing


def current() -> TurnCost | None:
    return _current.get()


def note(seconds: float) -> None:
    """Add one store call's time to the current turn's tally, if there is one."""
    if (cost := _current.get()) is not None:
        cost.seconds += seconds
