"""Parsing and validating every limit as an admin would type it."""

from __future__ import annotations

import pytest

from core.limits import SPECS, LimitError, LimitSpec, spec_for
from core.limits.parse import display, parse_value, to_text


def parse(name: str, raw: str, **kw: object) -> object:
    return parse_value(spec_for(name), raw, **kw)  # type: ignore[arg-type]


def error(name: str, raw: str, **kw: object) -> str:
    with pytest.raises(LimitError) as info:
        parse(name, raw, **kw)
    message = str(info.value)
    assert "\n" not in message and len(message) < 200, message
    return message


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("timeout", "10", 10),
        ("timeout", "10s", 10),
        ("timeout", "10 sec", 10),
        ("timeout", "1.5 seconds", 1.5),
        ("timeout", "1m", 60),
        ("timeout", "1min", 60),
        ("timeout", "`30s`", 30),
        ("memory", "256MB", 256),
        ("memory", "512M", 512),
        ("memory", "1GB", 1024),
        ("memory", "0.5 GB", 512),
        ("memory", "300", 300),
        ("output", "64KB", 64),
        ("output", "0.5MB", 512),
        ("output", "65536 bytes", 64),
        ("files", "0", 0),
        ("files", "5 files", 5),
        ("steps", "3 steps", 3),
        ("user_runs_per_hour", "1,000", 1000),
        ("workspace_runs_per_day", "100_000", 100_000),
        ("concurrency", "32", 32),
        ("tokens_per_day", "2M", 2_000_000),
        ("tokens_per_day", "500k", 500_000),
        ("tokens_per_day", "1.5m tokens", 1_500_000),
        ("channels", "all", ()),
        ("channels", "<#C123|general> <#C456>", ("C123", "C456")),
        ("channels", "<#123456789012>", ("123456789012",)),
        ("channels", "C1, C2,C1", ("C1", "C2")),
        ("safety", "STRICT", "strict"),
        ("safety", "normal", "standard"),
        ("safety", "off", "off"),
    ],
)
def test_accepts_values_with_units_written_out(name: str, raw: str, expected: object) -> None:
    assert parse(name, raw) == expected


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("timeout", "600s", "timeout must be between 1 and 60 seconds (got 600s)"),
        ("timeout", "2m", "timeout must be between 1 and 60 seconds (got 2m)"),
        ("timeout", "0", "timeout must be between 1 and 60 seconds (got 0)"),
        ("timeout", "-5", "timeout must be between 1 and 60 seconds (got -5)"),
        ("timeout", "500ms", "timeout must be between 1 and 60 seconds (got 500ms)"),
        ("timeout", "ten", "timeout must be a number of seconds, e.g. `30s` (got `ten`)"),
        ("timeout", "10 parsecs", "timeout: unknown unit `parsecs`; use seconds (`10s`) or minutes (`2m`)"),
        ("timeout", "", "timeout needs a value, e.g. `30s`"),
        ("memory", "2GB", "memory must be between 64 and 1,024 MB (got 2GB)"),
        ("memory", "1000KB", "memory must be between 64 and 1,024 MB (got 1000KB)"),
        ("memory", "lots", "memory must be a number of MB, e.g. `512MB` (got `lots`)"),
        ("output", "1MB", "output must be between 1 and 512 KB (got 1MB)"),
        ("output", "64 quarts", "output: unknown unit `quarts`; use KB (`64KB`) or MB (`1MB`)"),
        ("files", "21", "files must be between 0 and 20 files (got 21)"),
        ("files", "2.5", "files must be a whole number of files (got 2.5)"),
        ("steps", "0", "steps must be between 1 and 10 steps (got 0)"),
        ("steps", "3x", "steps: unknown unit `x`; use a whole number like `5`"),
        ("user_runs_per_hour", "1,00", "user_runs_per_hour must be a number like `60` (got `1,00`)"),
        ("workspace_runs_per_day", "100001", "workspace_runs_per_day must be between 1 and 100,000 runs"),
        ("concurrency", "33", "concurrency must be between 1 and 32 runs (got 33)"),
        ("tokens_per_day", "999", "tokens_per_day must be between 1,000 and 100,000,000 tokens (got 999)"),
        ("channels", "#general", "channels needs channel links or ids, not names (got `#general`)"),
        ("channels", "C1 bad!id", "channels needs `all` or channel links/ids (got `bad!id`)"),
        ("channels", ", ,", "channels needs `all` or at least one channel"),
        ("safety", "paranoid", "safety must be strict, standard or off (got `paranoid`)"),
    ],
)
def test_rejects_bad_values_in_one_clear_line(name: str, raw: str, message: str) -> None:
    assert error(name, raw).startswith(message)


def test_backticks_in_junk_cannot_break_the_reply_formatting() -> None:
    assert "```" not in error("timeout", "```x")


def test_huge_and_long_values_are_refused_without_echoing_them_whole() -> None:
    assert "(got " + "9" * 37 + "...)" in error("timeout", "9" * 60)
    assert "too long" in error("channels", "C1 " * 2000)


def test_too_many_channels_are_refused() -> None:
    assert "at most 50 channels (got 51)" in error("channels", " ".join(f"C{i}" for i in range(51)))


def test_operator_ceiling_and_safety_floor_bound_what_admins_may_set() -> None:
    assert parse("timeout", "120s", ceiling=300) == 120
    assert "between 1 and 20 seconds" in error("timeout", "30", ceiling=20)
    assert "requires at least `standard`" in error("safety", "off", floor="standard")
    assert parse("safety", "strict", floor="standard") == "strict"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Memory", "memory"),
        ("user-runs-per-hour", "user_runs_per_hour"),
        ("mem", "memory"),
        ("tokens", "tokens_per_day"),
    ],
)
def test_limit_names_are_forgiving(raw: str, name: str) -> None:
    assert spec_for(raw).name == name


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("timout", "unknown limit `timout`; did you mean `timeout`?"),
        ("concurency", "unknown limit `concurency`; did you mean `concurrency`?"),
        ("user_runs_per_hr", "unknown limit `user_runs_per_hr`; did you mean `user_runs_per_hour`?"),
        ("xyzzy", "unknown limit `xyzzy`; the limits are: timeout, memory, output, files, steps"),
    ],
)
def test_unknown_limit_names_suggest_the_closest(raw: str, message: str) -> None:
    with pytest.raises(LimitError) as info:
        spec_for(raw)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_stored_text_reads_back_as_the_same_value(spec: LimitSpec) -> None:
    raw = "<#C1|one>, <#C2>" if spec.kind == "channels" else spec.example
    value = parse_value(spec, raw)
    assert value != parse_value(spec, str(spec.default))
    assert parse_value(spec, to_text(spec, value)) == value


def test_values_display_with_their_units() -> None:
    assert display(spec_for("timeout"), 2.5) == "2.5 s"
    assert display(spec_for("memory"), 1024) == "1,024 MB"
    assert display(spec_for("tokens_per_day"), 2_000_000) == "2,000,000"
    assert display(spec_for("channels"), ()) == "all"
