"""Pure parsing and formatting of limit values as admins type them ("10s", "1GB", "<#C123>", "strict")."""

from __future__ import annotations

import re

from core.limits.spec import SAFETY_MODES, Kind, LimitError, LimitSpec

Value = float | int | tuple[str, ...] | str

MAX_RAW_CHARS = 4000  # room for 50 channel links with names
MAX_CHANNELS = 50

_NUMBER = re.compile(r"(?P<num>[+-]?(?:\d[\d_,]*(?:\.\d+)?|\.\d+))\s*(?P<unit>[a-z]*)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_MENTION = re.compile(r"<#([A-Za-z0-9]+)(?:\|[^>]*)?>")
_CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")

# fmt: off
_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "ms": 0.001, "m": 60, "min": 60,
            "mins": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600}
_MB = {"m": 1, "mb": 1, "mib": 1, "meg": 1, "megs": 1, "megabyte": 1, "megabytes": 1, "g": 1024, "gb": 1024,
       "gib": 1024, "gigabyte": 1024, "gigabytes": 1024, "k": 1 / 1024, "kb": 1 / 1024, "kib": 1 / 1024}
_KB = {"k": 1, "kb": 1, "kib": 1, "kilobyte": 1, "kilobytes": 1, "m": 1024, "mb": 1024, "mib": 1024,
       "megabyte": 1024, "megabytes": 1024, "b": 1 / 1024, "byte": 1 / 1024, "bytes": 1 / 1024}
_TOKENS: dict[str, float] = {"k": 1000, "thousand": 1000, "m": 1e6, "mn": 1e6, "million": 1e6}
_UNITS: dict[Kind, dict[str, float]] = {"time": _SECONDS, "memory": _MB, "output": _KB, "tokens": _TOKENS}
_UNIT_HINTS: dict[Kind, str] = {
    "time": "seconds (`10s`) or minutes (`2m`)",
    "memory": "MB (`512MB`) or GB (`1GB`)",
    "output": "KB (`64KB`) or MB (`1MB`)",
    "tokens": "a number like `500000`, `500k` or `2M`",
    "count": "a whole number like `5`",
}
# fmt: on


def parse_value(spec: LimitSpec, raw: str, ceiling: float | None = None, floor: str = "off") -> Value:
    """Parse and validate one value typed by an admin; raise LimitError with a one-line message."""
    text = raw.strip().strip("`").strip()
    if not text:
        raise LimitError(f"{spec.name} needs a value, e.g. `{spec.example}`")
    if len(text) > MAX_RAW_CHARS:
        raise LimitError(f"the value for {spec.name} is too long ({len(text)} characters)")
    if spec.kind == "channels":
        return parse_channels(text)
    if spec.kind == "safety":
        return parse_safety(text, floor)
    number = parse_number(spec, text)
    check_range(spec, number, spec.ceiling if ceiling is None else ceiling, text)
    return number


def parse_number(spec: LimitSpec, text: str) -> float | int:
    """Convert "10s", "1.5GB", "2M" into the spec's unit; ranges are checked separately."""
    lowered = _strip_unit_noun(spec, text.lower())
    match = _NUMBER.fullmatch(lowered)
    if match is None:
        raise LimitError(
            f"{spec.name} must be a number of {spec.unit_word}, e.g. `{spec.example}` (got `{_short(text)}`)"
        )
    digits, unit = match["num"], match["unit"]
    if "," in digits and not _THOUSANDS.fullmatch(digits):
        raise LimitError(f"{spec.name} must be a number like `{spec.example}` (got `{_short(text)}`)")
    factors = _UNITS.get(spec.kind, {})
    if unit and unit not in factors:
        raise LimitError(f"{spec.name}: unknown unit `{unit}`; use {_UNIT_HINTS[spec.kind]}")
    value = float(digits.replace(",", "").replace("_", "")) * factors.get(unit, 1)
    if spec.kind == "time":
        return round(value, 3)
    if spec.kind in ("memory", "output"):
        return round(value)  # "0.5GB" is exact; "1000KB" of memory rounds to 1 MB and fails the range
    if value != int(value):
        raise LimitError(f"{spec.name} must be a whole number of {spec.unit_word} (got {_short(text)})")
    return int(value)


def check_range(spec: LimitSpec, value: float, ceiling: float | None, shown: str) -> None:
    """Raise LimitError unless minimum <= value <= ceiling."""
    low = spec.minimum if spec.minimum is not None else 0
    high = ceiling if ceiling is not None else float("inf")
    if not low <= value <= high:
        raise LimitError(
            f"{spec.name} must be between {fmt_number(low)} and {fmt_number(high)} {spec.unit_word} "
            f"(got {_short(shown)})"
        )


def parse_channels(text: str) -> tuple[str, ...]:
    """Parse "all" or a list of channel ids / <#C123|name> / <#123> mentions into ids (empty: all)."""
    if text.lower() in ("all", "any", "*", "everywhere"):
        return ()
    ids: list[str] = []
    for token in re.split(r"[\s,]+", _MENTION.sub(r" \1 ", text)):
        if not token:
            continue
        if token.startswith("#"):
            raise LimitError(
                f"channels needs channel links or ids, not names (got `{_short(token)}`); "
                "type # and pick the channel so it becomes a link"
            )
        if not _CHANNEL_ID.fullmatch(token):
            raise LimitError(f"channels needs `all` or channel links/ids (got `{_short(token)}`)")
        if token not in ids:
            ids.append(token)
    if not ids:
        raise LimitError("channels needs `all` or at least one channel")
    if len(ids) > MAX_CHANNELS:
        raise LimitError(f"channels takes at most {MAX_CHANNELS} channels (got {len(ids)})")
    return tuple(ids)


def parse_safety(text: str, floor: str = "off") -> str:
    """Parse a safety mode; modes weaker than the operator's floor are refused."""
    mode = {"normal": "standard", "none": "off", "disabled": "off"}.get(text.lower(), text.lower())
    if mode not in SAFETY_MODES:
        raise LimitError(f"safety must be strict, standard or off (got `{_short(text)}`)")
    if SAFETY_MODES.index(mode) < SAFETY_MODES.index(floor):
        raise LimitError(f"safety cannot be `{mode}` here: the operator requires at least `{floor}`")
    return mode


def to_text(spec: LimitSpec, value: Value) -> str:
    """Return the canonical text stored for a value; parse_value reads it back unchanged."""
    if isinstance(value, tuple):
        return ",".join(value) if value else "all"
    if isinstance(value, str):
        return value
    return fmt_number(value).replace(",", "")


def display(spec: LimitSpec, value: Value) -> str:
    """Return a value as people read it: "10 s", "256 MB", "1,000,000", "all"."""
    if isinstance(value, tuple):
        return ", ".join(value) if value else "all"
    if isinstance(value, str):
        return value
    return f"{fmt_number(value)} {spec.unit}".rstrip()


def range_text(spec: LimitSpec, ceiling: float | None, floor: str = "off") -> str:
    """Return the allowed range in short form: "1-60 s", "standard-strict", "all or a list"."""
    if spec.kind == "channels":
        return "all or a list"
    if spec.kind == "safety":
        return f"{floor}-strict" if floor != "strict" else "strict"
    low = fmt_number(spec.minimum or 0)
    return f"{low}-{fmt_number(ceiling if ceiling is not None else 0)} {spec.unit}".rstrip()


def fmt_number(value: float) -> str:
    """Format 10.0 as "10", 2.5 as "2.5", 100000 as "100,000"."""
    if value == float("inf"):
        return "unlimited"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _strip_unit_noun(spec: LimitSpec, text: str) -> str:
    """Accept "10 files", "3 steps", "2M tokens": the unit noun itself adds nothing."""
    for noun in (spec.unit_word, spec.unit_word.rstrip("s")):
        if noun and spec.kind in ("count", "tokens") and text.endswith(noun):
            return text[: -len(noun)].strip()
    return text


def _short(text: str) -> str:
    """Echo user input safely: short, and without backticks that would break the reply's formatting."""
    text = text.replace("`", "'")
    return text if len(text) <= 40 else text[:37] + "..."
