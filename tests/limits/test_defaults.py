"""Operator defaults and ceilings from CODEBOT_LIMIT_*, and how they combine with stored values."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.limits import SPECS, EffectiveLimits, LimitDefaults
from core.settings import Settings
from sandbox.types import RunLimits


def test_no_variables_gives_the_documented_defaults() -> None:
    d = LimitDefaults.from_env({})
    assert d == LimitDefaults()
    limits = EffectiveLimits.resolve(d, {})
    assert limits == EffectiveLimits()  # the dataclass defaults document the same numbers
    assert (d.ceiling("timeout"), d.ceiling("memory"), d.ceiling("tokens_per_day")) == (60, 1024, 100_000_000)
    assert d.default("channels") == () and d.default("safety") == "standard"


def test_variables_set_defaults_and_ceilings_with_units() -> None:
    d = LimitDefaults.from_env(
        {
            "CODEBOT_LIMIT_TIMEOUT": "30s",
            "CODEBOT_LIMIT_TIMEOUT_MAX": "2m",
            "CODEBOT_LIMIT_MEMORY": "1GB",
            "CODEBOT_LIMIT_MEMORY_MAX": "2GB",
            "CODEBOT_LIMIT_TOKENS_PER_DAY": "5M",
            "CODEBOT_LIMIT_CHANNELS": "C1,C2",
            "CODEBOT_LIMIT_SAFETY": "strict",
            "CODEBOT_LIMIT_SAFETY_FLOOR": "standard",
        }
    )
    assert (d.default("timeout"), d.ceiling("timeout")) == (30, 120)
    assert (d.default("memory"), d.ceiling("memory")) == (1024, 2048)
    assert d.default("tokens_per_day") == 5_000_000
    assert d.channels == ("C1", "C2") and d.safety == "strict" and d.safety_floor == "standard"


def test_a_lowered_ceiling_pulls_the_builtin_default_down() -> None:
    d = LimitDefaults.from_env({"CODEBOT_LIMIT_TIMEOUT_MAX": "5"})
    assert (d.default("timeout"), d.ceiling("timeout")) == (5, 5)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CODEBOT_LIMIT_STEPS": "abc"}, "CODEBOT_LIMIT_STEPS: steps must be a number"),
        ({"CODEBOT_LIMIT_TIMEOUT": "120"}, "CODEBOT_LIMIT_TIMEOUT: timeout must be between 1 and 60"),
        ({"CODEBOT_LIMIT_MEMORY_MAX": "16MB"}, "CODEBOT_LIMIT_MEMORY_MAX: must be at least 64 MB"),
        ({"CODEBOT_LIMIT_FILES_MAX": "x"}, "CODEBOT_LIMIT_FILES_MAX: files must be a number"),
        ({"CODEBOT_LIMIT_SAFETY": "loose"}, "CODEBOT_LIMIT_SAFETY: safety must be strict, standard or off"),
        ({"CODEBOT_LIMIT_CHANNELS": "#general"}, "CODEBOT_LIMIT_CHANNELS: channels needs channel links"),
        (
            {"CODEBOT_LIMIT_SAFETY_FLOOR": "standard", "CODEBOT_LIMIT_SAFETY": "off"},
            "CODEBOT_LIMIT_SAFETY: safety cannot be `off` here",
        ),
    ],
)
def test_bad_variables_raise_value_error_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError) as info:
        LimitDefaults.from_env(environ)
    assert str(info.value).startswith(named)


def test_a_default_above_the_ceiling_says_to_raise_the_ceiling() -> None:
    with pytest.raises(ValueError, match="raise CODEBOT_LIMIT_TIMEOUT_MAX too"):
        LimitDefaults.from_env({"CODEBOT_LIMIT_TIMEOUT": "120"})
    with pytest.raises(ValueError) as info:
        LimitDefaults.from_env({"CODEBOT_LIMIT_TIMEOUT": "0"})
    assert str(info.value) == "CODEBOT_LIMIT_TIMEOUT: timeout must be between 1 and 60 seconds (got 0)"


def test_every_numeric_limit_has_its_two_variables() -> None:
    environ = {}
    for spec in SPECS:
        if spec.numeric:
            environ[spec.env] = str(spec.minimum)
            environ[f"{spec.env}_MAX"] = str(spec.minimum)
    d = LimitDefaults.from_env(environ)
    assert all(d.default(s.name) == s.minimum == d.ceiling(s.name) for s in SPECS if s.numeric)


def test_settings_read_limits_from_dotenv_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CODEBOT_LIMIT_TIMEOUT=20\nCODEBOT_LIMIT_STEPS=5\nOPENAI_API_KEY=sk-secret\n")
    for name in ("CODEBOT_LIMIT_TIMEOUT", "CODEBOT_LIMIT_STEPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODEBOT_LIMIT_STEPS", "7")
    limits = Settings(_env_file=env_file).limits  # type: ignore[call-arg]
    assert (limits.default("timeout"), limits.default("steps")) == (20, 7)
    monkeypatch.delenv("CODEBOT_LIMIT_STEPS")
    assert Settings(_env_file=tmp_path / "missing.env").limits == LimitDefaults()  # type: ignore[call-arg]


def test_stored_values_overlay_defaults_and_are_marked_custom() -> None:
    limits = EffectiveLimits.resolve(
        LimitDefaults(), {"timeout": "30", "channels": "C1,C2", "steps": "default"}
    )
    assert limits.timeout_s == 30 and limits.channels == ("C1", "C2") and limits.steps == 3
    assert limits.custom == {"timeout", "channels"}
    assert limits.allows_channel("C2") and not limits.allows_channel("C3")
    assert EffectiveLimits().allows_channel("anything")


def test_stored_values_beyond_a_tightened_ceiling_or_floor_are_clamped() -> None:
    tightened = LimitDefaults.from_env(
        {"CODEBOT_LIMIT_TIMEOUT_MAX": "20", "CODEBOT_LIMIT_SAFETY_FLOOR": "strict"}
    )
    limits = EffectiveLimits.resolve(tightened, {"timeout": "60", "safety": "off"})
    assert limits.timeout_s == 20 and limits.safety == "strict"


def test_unreadable_stored_values_fall_back_to_the_default() -> None:
    limits = EffectiveLimits.resolve(LimitDefaults(), {"memory": "lots", "unknown_limit": "5"})
    assert limits.memory_mb == 256 and limits.custom == frozenset()


def test_run_limits_carry_timeout_memory_output_and_files_into_the_sandbox() -> None:
    base = RunLimits(timeout_s=10, cpu_s=5, memory_mb=256, max_output_bytes=1024, max_files=3, tmp_mb=99)
    limits = EffectiveLimits.resolve(
        LimitDefaults(), {"timeout": "4", "memory": "512", "output": "128", "files": "0"}
    )
    run = limits.run_limits(base)
    assert (run.timeout_s, run.memory_mb, run.max_output_bytes, run.max_files) == (4, 512, 128 * 1024, 0)
    assert run.cpu_s == 2  # the operator's CPU:wall ratio (5:10) is kept
    assert run.tmp_mb == 99  # caps admins cannot set stay the operator's
