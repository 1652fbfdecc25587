"""The limits in force for one workspace: operator defaults overlaid with what its admins set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from core.limits.defaults import LimitDefaults
from core.limits.parse import Value, parse_value
from core.limits.spec import BY_NAME, SAFETY_MODES, SPECS, LimitError, LimitSpec
from sandbox.types import RunLimits

log = logging.getLogger(__name__)

DEFAULT_MARK = "default"  # stored by `set <limit> default`: follow the operator's default again


@dataclass(frozen=True)
class EffectiveLimits:
    """Every limit for one workspace, in the units of its field name."""

    timeout_s: float = 10.0
    memory_mb: int = 256
    output_kb: int = 64
    files: int = 10
    file_size_mb: int = 20
    thread_files_mb: int = 100
    thread_state_mb: int = 50
    steps: int = 3
    user_runs_per_hour: int = 30
    workspace_runs_per_day: int = 500
    concurrency: int = 4
    tokens_per_day: int = 1_000_000
    channels: tuple[str, ...] = ()  # empty: every channel
    safety: str = "standard"
    custom: frozenset[str] = frozenset()  # limits this workspace's admins set (shown as changed)

    @classmethod
    def resolve(cls, defaults: LimitDefaults, stored: Mapping[str, str]) -> EffectiveLimits:
        """Overlay stored values on the defaults, clamping them to the operator's current ceilings."""
        values: dict[str, Value] = {}
        custom: set[str] = set()
        for spec in SPECS:
            raw = stored.get(spec.name)
            value = None if raw is None or raw == DEFAULT_MARK else _stored_value(spec, raw, defaults)
            if value is None:
                value = defaults.default(spec.name)
            else:
                custom.add(spec.name)
            values[spec.field] = _typed(spec, value)
        return cls(**values, custom=frozenset(custom))  # type: ignore[arg-type]

    def value(self, name: str) -> Value:
        """Return a limit's value by its user-facing name."""
        value: Value = getattr(self, BY_NAME[name].field)
        return value

    def allows_channel(self, channel: str) -> bool:
        """Say whether the bot may answer in this channel."""
        return not self.channels or channel in self.channels

    def run_limits(self, base: RunLimits) -> RunLimits:
        """Apply this workspace's timeout, memory, output and file caps to the operator's base limits."""
        # CPU time scales with the wall clock so raising the timeout lets CPU-bound code use it.
        cpu_ratio = base.cpu_s / base.timeout_s if base.timeout_s > 0 else 1.0
        return base.replace(
            timeout_s=self.timeout_s,
            cpu_s=round(self.timeout_s * cpu_ratio, 3),
            memory_mb=self.memory_mb,
            max_output_bytes=self.output_kb * 1024,
            max_files=self.files,
        )


def _stored_value(spec: LimitSpec, raw: str, defaults: LimitDefaults) -> Value | None:
    """Read a stored value; values beyond a since-tightened ceiling or floor are clamped, junk is ignored."""
    try:
        value = parse_value(spec, raw, float("inf"))
    except LimitError as exc:
        log.warning("ignoring stored limit %s=%r: %s", spec.name, raw[:40], exc)
        return None
    if isinstance(value, str) and spec.kind == "safety":
        floor = defaults.safety_floor
        return floor if SAFETY_MODES.index(value) < SAFETY_MODES.index(floor) else value
    ceiling = defaults.ceiling(spec.name)
    if isinstance(value, int | float) and ceiling is not None and value > ceiling:
        return ceiling
    return value


def _typed(spec: LimitSpec, value: Value) -> Value:
    """Counts are ints; the timeout may be fractional."""
    if spec.numeric and spec.kind != "time":
        return int(value)  # type: ignore[arg-type]
    return value
