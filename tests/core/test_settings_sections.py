"""One Settings reads every variable: its sandbox and limits sections come from `.env` and the environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.cli import secret_values
from core.limits import LimitDefaults
from core.settings import ConfigError, Settings, load_settings
from sandbox import SandboxConfig

NAMES = ("CODEBOT_SANDBOX_POOL_SIZE", "CODEBOT_SANDBOX_MAX_CONCURRENT", "CODEBOT_LIMIT_STEPS", "CODE_TOKEN")


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in NAMES:  # only this test's values count, not this machine's
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".env"
    path.write_text(
        "CODEBOT_SANDBOX_POOL_SIZE=1\nCODEBOT_SANDBOX_MAX_CONCURRENT=3\nCODEBOT_LIMIT_STEPS=4\n"
        "CODE_TOKEN=tok-from-dotenv\n"
    )
    return path


def test_sections_read_dotenv_under_the_environment_under_arguments(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBOT_SANDBOX_POOL_SIZE", "5")
    settings = load_settings(env_file)
    assert (settings.sandbox.pool_size, settings.sandbox.max_concurrent) == (5, 3)
    assert settings.limits.default("steps") == 4
    argued = load_settings(env_file, CODEBOT_SANDBOX_POOL_SIZE=0, CODEBOT_LIMIT_STEPS="6")
    assert (argued.sandbox.pool_size, argued.sandbox.max_concurrent) == (0, 3)
    assert argued.limits.default("steps") == 6


def test_without_any_variable_the_sections_are_the_owners_defaults(env_file: Path) -> None:
    settings = load_settings(env_file.parent / "missing.env")
    assert settings.sandbox == SandboxConfig() and settings.limits == LimitDefaults()


def test_a_section_given_whole_is_taken_as_given(env_file: Path) -> None:
    cfg = dataclasses.replace(SandboxConfig(), pool_size=7)
    assert load_settings(env_file, sandbox=cfg).sandbox is cfg


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CODEBOT_SANDBOX_POOL_SIZE", "many", "CODEBOT_SANDBOX_POOL_SIZE must be an integer, got 'many'"),
        ("CODEBOT_SANDBOX_CGROUP", "v3", "CODEBOT_SANDBOX_CGROUP must be one of auto, v1, v2, off"),
        ("CODEBOT_LIMIT_MEMORY", "lots", "CODEBOT_LIMIT_MEMORY: memory must be a number of MB"),
        ("CODEBOT_LIMIT_TIMEOUT", "120", "CODEBOT_LIMIT_TIMEOUT: timeout must be between"),
    ],
)
def test_a_bad_section_variable_is_one_clear_config_error(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, **{name: value})
    assert str(err.value).startswith("invalid setting ")
    assert says in str(err.value) and "Value error" not in str(err.value)


def test_secret_variables_in_dotenv_are_scrubbed_too(env_file: Path) -> None:
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert "tok-from-dotenv" in secret_values(settings)
    assert "tok-from-dotenv" not in repr(settings)
    assert "tok-from-dotenv" not in str(settings.model_dump())


def test_a_secret_given_as_secretstr_is_scrubbed_by_value_not_by_its_mask(env_file: Path) -> None:
    settings = Settings(_env_file=None, OPENAI_API_KEY=SecretStr("sk-given"))  # type: ignore[call-arg]
    assert "sk-given" in secret_values(settings) and "**********" not in secret_values(settings)
