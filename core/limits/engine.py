"""Reads, changes and enforces a workspace's limits; every counter lives in the store.

Windows: runs per user per hour and runs per workspace per day are *sliding* windows (a slot frees up
exactly an hour / a day after it was taken). The token quota is per *UTC calendar day* and resets at
midnight UTC. A question counts as one run however many times its code runs (the `steps` limit bounds
those). A refused question takes no slot, so a user who hits a limit is not pushed further back.

Each workspace's limits are kept here with their version (core.store.base.LimitValues), so a question
costs no read of them: the question's first store call (TurnBegin) carries the version it was decided
with and writes nothing if the limits changed since, on any replica; the turn then reads them again.

Reading a run window uses `Store.take_slot(bucket, 0, ...)`: with a limit of zero nothing is counted, and
the result still carries the count and when the oldest slot frees up. Every Store must keep that so.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.limits.defaults import LimitDefaults
from core.limits.effective import DEFAULT_MARK, EffectiveLimits
from core.limits.parse import display, parse_value, to_text
from core.limits.spec import LimitError, spec_for
from core.limits.timefmt import DAY_S, clock_time, day_key, in_words, next_midnight
from core.store.base import (
    BucketCharge,
    LimitChange,
    RunAdmission,
    RunCheck,
    SlotResult,
    Store,
    Window,
    Workspace,
)
from core.types import Author, Incoming

HOUR_S = 3600.0
MAX_LISTED_CHANNELS = 10
KEPT_WORKSPACES = 4096  # workspaces whose limits are kept between questions (the least recent go first)


@dataclass(frozen=True)
class Admission:
    """Whether a question may go ahead; when not, `notice` names the limit and when it resets."""

    granted: bool
    notice: str = ""
    limit: str | None = None  # the limit that refused it


@dataclass(frozen=True)
class WindowUsage:
    """The counters the rate limits look at, right now."""

    user_runs_last_hour: int
    workspace_runs_last_day: int
    tokens_today: int


def by_text(author: Author) -> str:
    """Name who made a change, for the change log."""
    if author.name and author.name != author.id:
        return f"{author.name} ({author.id})"
    return author.id


class LimitsEngine:
    """Per-workspace limits over a Store; stateless itself, so several replicas can share a store."""

    def __init__(self, store: Store, defaults: LimitDefaults, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.defaults = defaults
        self._clock = clock
        self._kept: OrderedDict[Workspace, tuple[EffectiveLimits, int]] = OrderedDict()

    async def effective(self, ws: Workspace) -> EffectiveLimits:
        """Return the limits in force for a workspace, read from the store now."""
        return (await self._read(ws))[0]

    async def current(self, ws: Workspace) -> tuple[EffectiveLimits, int]:
        """The workspace's limits and their version as last read here; the store checks the version."""
        kept = self._kept.get(ws)
        if kept is None:
            return await self._read(ws)
        self._kept.move_to_end(ws)
        return kept

    def forget(self, ws: Workspace) -> None:
        """The store said the kept limits are stale: the next current() reads them again."""
        self._kept.pop(ws, None)

    async def _read(self, ws: Workspace) -> tuple[EffectiveLimits, int]:
        stored = await self._store.limits(ws)
        kept = (EffectiveLimits.resolve(self.defaults, stored.values), stored.version)
        self._kept[ws] = kept
        self._kept.move_to_end(ws)
        while len(self._kept) > KEPT_WORKSPACES:
            self._kept.popitem(last=False)
        return kept

    async def set(self, ws: Workspace, name: str, raw: str, by: Author) -> str:
        """Validate and store a new value; return the old -> new confirmation. Raises LimitError."""
        spec = spec_for(name)
        stored_values = await self._store.limits(ws)
        before = EffectiveLimits.resolve(self.defaults, stored_values.values)
        if raw.strip().lower().strip("`") in (DEFAULT_MARK, "reset"):
            text = DEFAULT_MARK
            new_value = self.defaults.default(spec.name)
        else:
            new_value = parse_value(spec, raw, self.defaults.ceiling(spec.name), self.defaults.safety_floor)
            text = to_text(spec, new_value)
        old_value = before.value(spec.name)
        stored = stored_values.values.get(spec.name)
        if stored == text or (stored is None and text == DEFAULT_MARK):
            return f"*{spec.name}* is already `{display(spec, old_value)}`; nothing changed."
        old_text = stored if stored is not None else to_text(spec, old_value)
        change = LimitChange(ws, spec.name, old_text, text, by_text(by), self._clock())
        await self._store.set_limit(change)
        self.forget(ws)
        note = " (the operator's default)" if text == DEFAULT_MARK else ""
        return (
            f"*{spec.name}*: `{display(spec, old_value)}` → `{display(spec, new_value)}`{note}; "
            "takes effect on the next question."
        )

    async def changes(self, ws: Workspace, limit: int = 20) -> list[LimitChange]:
        """Return the newest limit changes of a workspace."""
        return await self._store.limit_changes(ws, limit)

    async def admit(self, incoming: Incoming, limits: EffectiveLimits) -> Admission:
        """Check the channel list, run windows and token quota; count the run only when all pass."""
        check = self.run_check(incoming, limits)
        if check is None:
            return self.decide(limits, None, None)
        return self.decide(limits, check, await self._store.admit_run(check))

    def run_check(self, incoming: Incoming, limits: EffectiveLimits) -> RunCheck | None:
        """The windows a question must pass, or None when its channel is not allowed (no window counts).

        Checked in one store call (one round trip on PostgreSQL): the token quota, then a peek at the
        workspace's window so a full workspace does not eat the user's slot, then the user's and the
        workspace's slots."""
        if not limits.allows_channel(incoming.key.channel):
            return None
        ws, now = Workspace.of(incoming.key), self._clock()
        return RunCheck(
            tokens=Window(_tokens_bucket(ws, now), limits.tokens_per_day, DAY_S),
            workspace=Window(_ws_bucket(ws), limits.workspace_runs_per_day, DAY_S),
            user=Window(_user_bucket(ws, incoming.author.id), limits.user_runs_per_hour, HOUR_S),
            now=now,
        )

    def decide(
        self, limits: EffectiveLimits, check: RunCheck | None, result: RunAdmission | None
    ) -> Admission:
        """The admission of a question: refused by its channel (no check), by a window, or granted."""
        if check is None:
            return Admission(False, _channels_notice(limits.channels), "channels")
        now = check.now
        if result is None or result.refused is None:
            return Admission(True)
        if result.refused == "tokens":
            return Admission(False, _tokens_notice(limits.tokens_per_day, now), "tokens_per_day")
        slot = result.slot
        if result.refused == "user" and slot is not None:
            notice = f"You have used your {_runs(slot.limit)} for this hour; {_next_slot(slot, now)}."
            return Admission(False, notice, "user_runs_per_hour")
        # Racing for the workspace's very last slot can still cost this user's hourly slot; the store
        # protocol has no release, and the loss is one slot in a workspace that is full anyway.
        if slot is not None:
            return _ws_refusal(limits.workspace_runs_per_day, slot, now)
        return Admission(True)

    def token_charge(self, ws: Workspace, tokens: int) -> BucketCharge | None:
        """The charge of a turn's LLM tokens to today's quota, for the turn's commit to add."""
        if tokens <= 0:
            return None
        return BucketCharge(_tokens_bucket(ws, self._clock()), tokens, DAY_S)

    async def record_tokens(self, ws: Workspace, tokens: int) -> None:
        """Add LLM tokens spent by a workspace to today's quota."""
        if tokens > 0:
            now = self._clock()
            await self._store.add_to_bucket(_tokens_bucket(ws, now), tokens, DAY_S, now)

    async def window_usage(self, ws: Workspace, user_id: str) -> WindowUsage:
        """Read the rate-limit counters without counting anything."""
        now = self._clock()
        user = await self._store.take_slot(_user_bucket(ws, user_id), 0, HOUR_S, now)
        workspace = await self._store.take_slot(_ws_bucket(ws), 0, DAY_S, now)
        tokens = await self._store.bucket_total(_tokens_bucket(ws, now), DAY_S, now)
        return WindowUsage(user.used, workspace.used, tokens)


def _user_bucket(ws: Workspace, user_id: str) -> str:
    return f"runs:user:{ws}:{user_id}"


def _ws_bucket(ws: Workspace) -> str:
    return f"runs:workspace:{ws}"


def _tokens_bucket(ws: Workspace, now: float) -> str:
    # One bucket per UTC day makes the quota a calendar day; the sliding window only expires rows.
    return f"tokens:{ws}:{day_key(now)}"


def _runs(n: int) -> str:
    return f"{n:,} run{'s' if n != 1 else ''}"


def _next_slot(slot: SlotResult, now: float) -> str:
    return (
        f"the next slot frees up in {in_words(slot.resets_at - now)} (at {clock_time(slot.resets_at, now)})"
    )


def _ws_refusal(limit: int, slot: SlotResult, now: float) -> Admission:
    notice = f"This workspace has used its {_runs(limit)} for the last 24 hours; {_next_slot(slot, now)}."
    return Admission(False, notice, "workspace_runs_per_day")


def _tokens_notice(limit: int, now: float) -> str:
    reset = next_midnight(now)
    return (
        f"This workspace has used its {limit:,} LLM tokens for today; the quota resets at midnight UTC, "
        f"in {in_words(reset - now)}."
    )


def _channels_notice(channels: tuple[str, ...]) -> str:
    shown = ", ".join(f"`{c}`" for c in channels[:MAX_LISTED_CHANNELS])
    more = f" and {len(channels) - MAX_LISTED_CHANNELS} more" if len(channels) > MAX_LISTED_CHANNELS else ""
    return (
        f"I don't answer in this channel; an admin limited me to {shown}{more}. "
        "Admins can change that with the `set channels` command."
    )


__all__ = ["Admission", "LimitError", "LimitsEngine", "WindowUsage", "by_text"]
