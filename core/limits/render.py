"""Plain-text tables of limits, shared by the `/codebot` commands and `codebot admin`."""

from __future__ import annotations

from core.limits.defaults import LimitDefaults
from core.limits.effective import EffectiveLimits
from core.limits.parse import display, range_text
from core.limits.spec import SPECS

WINDOWS_TEXT = (
    "Run limits use sliding windows: a slot frees up one hour (per user) or 24 hours (per workspace) "
    "after it was taken. A question counts as one run however often its code runs, and a refused "
    "question counts nothing. The token quota is per UTC day and resets at midnight UTC."
)

_VALUE_WIDTH = 18


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def limits_table(limits: EffectiveLimits, defaults: LimitDefaults) -> str:
    """Return the limits of a workspace as aligned columns: value, allowed range, default."""
    rows = [("limit", "value", "range", "default")]
    for spec in SPECS:
        mark = " *" if spec.name in limits.custom else ""
        value = _clip(display(spec, limits.value(spec.name)), _VALUE_WIDTH - len(mark)) + mark
        allowed = range_text(spec, defaults.ceiling(spec.name), defaults.safety_floor)
        default = _clip(display(spec, defaults.default(spec.name)), 14)
        rows.append((spec.name, value, allowed, default))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def reference_table() -> str:
    """Return one line per limit: its name and what it bounds (`limits` shows values and ranges)."""
    name_w = max(len(s.name) for s in SPECS)
    return "\n".join(f"{s.name.ljust(name_w)}  {s.description}" for s in SPECS)
