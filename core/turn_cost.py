"""The store cost of one turn: its store calls' seconds, summed across the turn's tasks.

A context variable holds the turn's tally: Codebot.submit opens it before the event's claim, the turn's
task (and the lease and slot renewers it starts) inherit it, and the metered store adds each call's time
to it. The turn's observer records the total once the turn ends (codebot_turn_store_seconds), so the
store overhead per turn is a distribution (p50, p99), not only a mean over calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class TurnCost:
    """Mutable, private to one turn: what its store calls cost so far."""

    seconds: float = 0.0
    calls: int = 0


_current: ContextVar[TurnCost | None] = ContextVar("codebot_turn_cost", default=None)


@contextmanager
def tally() -> Iterator[TurnCost]:
    """Count store calls made in this context, and in tasks started from it, into a fresh TurnCost."""
    cost = TurnCost()
    token = _current.set(cost)
    try:
        yield cost
    finally:
        _current.reset(token)  # the caller's context (an adapter's loop) keeps counting nothing


def current() -> TurnCost | None:
    return _current.get()


def note(seconds: float) -> None:
    """Add one store call to the current turn's tally, if there is one."""
    cost = _current.get()
    if cost is not None:
        cost.seconds += seconds
        cost.calls += 1
