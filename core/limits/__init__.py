"""Admin-set limits: the table of limits, parsing, defaults, enforcement and the per-workspace queue."""

from core.limits.defaults import LimitDefaults
from core.limits.effective import EffectiveLimits
from core.limits.engine import Admission, LimitsEngine, WindowUsage
from core.limits.gate import WorkspaceGate
from core.limits.spec import SPECS, LimitError, LimitSpec, spec_for

__all__ = [
    "SPECS",
    "Admission",
    "EffectiveLimits",
    "LimitDefaults",
    "LimitError",
    "LimitSpec",
    "LimitsEngine",
    "WindowUsage",
    "WorkspaceGate",
    "spec_for",
]
