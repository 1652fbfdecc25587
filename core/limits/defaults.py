"""The operator's defaults and ceilings for every limit, parsed from `CODEBOT_LIMIT_*` variables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from core.limits.parse import Value, check_range, fmt_number, parse_channels, parse_number, parse_safety
from core.limits.spec import BY_NAME, SPECS, LimitError, LimitSpec

SAFETY_FLOOR_ENV = "CODEBOT_LIMIT_SAFETY_FLOOR"

T = TypeVar("T")


def _builtin(attr: str) -> Mapping[str, float]:
    return MappingProxyType({s.name: getattr(s, attr) for s in SPECS if s.numeric})


@dataclass(frozen=True)
class LimitDefaults:
    """What a workspace gets before any admin changes anything, and how far admins may go.

    `numbers` and `ceilings` are keyed by limit name, in the limit's unit. `channels` empty means all
    channels. `safety_floor` is the weakest safety mode admins may choose.
    """

    numbers: Mapping[str, float] = field(default_factory=lambda: _builtin("default"))
    ceilings: Mapping[str, float] = field(default_factory=lambda: _builtin("ceiling"))
    channels: tuple[str, ...] = ()
    safety: str = "standard"
    safety_floor: str = "off"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LimitDefaults:
        """Parse CODEBOT_LIMIT_<NAME> and CODEBOT_LIMIT_<NAME>_MAX; raise ValueError naming a bad variable.

        Settings hands this its `limits` section (core/settings.py reads the variables).
        """
        numbers: dict[str, float] = {}
        ceilings: dict[str, float] = {}
        for spec in SPECS:
            if spec.numeric:
                ceilings[spec.name] = _ceiling(spec, environ)
                numbers[spec.name] = _default(spec, environ, ceilings[spec.name])
        floor = _text_env(environ, SAFETY_FLOOR_ENV, "off", parse_safety)
        safety = _text_env(environ, BY_NAME["safety"].env, "standard", lambda t: parse_safety(t, floor))
        no_list: tuple[str, ...] = ()  # every channel
        channels = _text_env(environ, BY_NAME["channels"].env, no_list, parse_channels)
        return cls(MappingProxyType(numbers), MappingProxyType(ceilings), channels, safety, floor)

    def default(self, name: str) -> Value:
        """Return the default value of a limit, by name."""
        if name == "channels":
            return self.channels
        if name == "safety":
            return self.safety
        return self.numbers[name]

    def ceiling(self, name: str) -> float | None:
        """Return the operator's ceiling for a numeric limit (None for channels and safety)."""
        return self.ceilings.get(name)


def _ceiling(spec: LimitSpec, environ: Mapping[str, str]) -> float:
    var = f"{spec.env}_MAX"
    ceiling = float(spec.ceiling or 0)
    if environ.get(var, "").strip():
        ceiling = _parsed(var, environ[var], lambda t: parse_number(spec, t))
    if spec.minimum is not None and ceiling < spec.minimum:
        raise ValueError(
            f"{var}: must be at least {fmt_number(spec.minimum)} {spec.unit_word} (got {environ[var]})"
        )
    return ceiling


def _default(spec: LimitSpec, environ: Mapping[str, str], ceiling: float) -> float:
    raw = environ.get(spec.env, "").strip()
    if not raw:
        # A ceiling lowered below the built-in default pulls the default down with it.
        return min(float(spec.default), ceiling)
    value = _parsed(spec.env, raw, lambda t: parse_number(spec, t))
    try:
        check_range(spec, value, ceiling, raw)
    except LimitError as exc:
        hint = f"; raise {spec.env}_MAX too" if value > ceiling else ""
        raise ValueError(f"{spec.env}: {exc}{hint}") from None
    return value


def _text_env(environ: Mapping[str, str], var: str, fallback: T, parse: Callable[[str], T]) -> T:
    raw = environ.get(var, "").strip()
    return _parsed(var, raw, parse) if raw else fallback


def _parsed(var: str, raw: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(raw.strip())
    except LimitError as exc:
        raise ValueError(f"{var}: {exc}") from None
