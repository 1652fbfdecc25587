"""`.env.example` lists every setting the code reads, and every value in it is valid as written."""

from __future__ import annotations

import re
from pathlib import Path

from dotenv import dotenv_values

from core.limits.spec import SPECS
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"


def names_read_by_the_code() -> set[str]:
    names = {f.alias for f in Settings.model_fields.values() if f.alias}
    names |= {spec.env for spec in SPECS}
    names |= {f"{spec.env}_MAX" for spec in SPECS if spec.ceiling is not None}
    names.add("CODEBOT_LIMIT_SAFETY_FLOOR")
    sandbox_source = (ROOT / "sandbox" / "config.py").read_text()
    names |= {f"CODEBOT_SANDBOX_{n}" for n in re.findall(r'get\("([A-Z_]+)"\)', sandbox_source)}
    names |= {f"CODEBOT_SANDBOX_{n}" for n in re.findall(r'\("[a-z_]+", "([A-Z_]+)", ', sandbox_source)}
    names |= {f"CODEBOT_SANDBOX_{n}" for n in re.findall(r'": \("([A-Z_]+)", ', sandbox_source)}
    return names


def test_every_setting_is_documented_and_nothing_stale_is():
    documented = set(dotenv_values(EXAMPLE))
    read = names_read_by_the_code()
    assert len(read) > 60  # the scan found the sandbox and limit variables too
    assert read - documented == set(), "settings missing from .env.example"
    assert documented - read == set(), ".env.example lists settings nothing reads"


def test_every_setting_has_a_comment():
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line) and not line.split("=", 1)[0].endswith("_MAX"):
            assert lines[i - 1].startswith("#"), f"{line.split('=')[0]} has no comment above it"


def test_the_example_values_are_valid_as_written(monkeypatch):
    env = {k: v for k, v in dotenv_values(EXAMPLE).items() if v is not None}
    for name in env:  # only the file counts here, not this machine's environment
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    assert settings.model == "openai/gpt-4o-mini" and settings.openai_api_key is None
    assert settings.sandbox.default_limits.timeout_s == 10
    assert settings.limits.safety == "standard"
