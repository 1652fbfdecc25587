"""Settings: every variable read once at start-up from the environment and `.env`, then passed down.

The `sandbox` and `limits` sections are handed down as the frozen values their owners parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    InstanceOf,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from core.limits.defaults import LimitDefaults
from sandbox.config import SandboxConfig

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# section field -> (the prefix of its variables, their parser: ValueError names a bad one)
_SECTIONS: dict[str, tuple[str, Callable[[Mapping[str, str]], Any]]] = {
    "sandbox": ("CODEBOT_SANDBOX_", SandboxConfig.from_env),
    "limits": ("CODEBOT_LIMIT_", LimitDefaults.from_env),
}
# Other variables the log formatter scrubs: mirascope reads other providers' keys itself.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


@dataclass(frozen=True)
class DiscordShards:
    """The Discord shards one process runs: `ids` of `count` (CODEBOT_DISCORD_SHARDS=0,1/4)."""

    ids: tuple[int, ...]
    count: int

    @classmethod
    def parse(cls, text: str) -> DiscordShards:
        """Parse `IDS/COUNT`, IDS a comma list of shard ids or ranges (`0,1/4`, `0-3/8`)."""
        ids_part, slash, count_part = text.strip().partition("/")
        if not slash or not ids_part.strip() or not count_part.strip():
            raise ValueError(f"{text!r} is not IDS/COUNT {_SHARDS_HINT}")
        count = _shard_int(count_part, text)
        if not 1 <= count <= _MAX_SHARDS:
            raise ValueError(f"the shard count must be 1 to {_MAX_SHARDS}, not {count} {_SHARDS_HINT}")
        ids: list[int] = []
        for item in ids_part.split(","):
            first, dash, last = item.partition("-")
            lo = _shard_int(first, text)
            hi = _shard_int(last, text) if dash else lo
            if hi < lo or hi >= count:
                raise ValueError(f"shard ids must be 0 to {count - 1}, not {item.strip()!r} {_SHARDS_HINT}")
            ids.extend(range(lo, hi + 1))
        if len(set(ids)) != len(ids):
            raise ValueError(f"{text!r} names a shard twice {_SHARDS_HINT}")
        return cls(tuple(ids), count)

    def __str__(self) -> str:
        return f"{','.join(map(str, self.ids))}/{self.count}"


_MAX_SHARDS = 4096  # far above what any bot needs (Discord wants one shard per ~1,000 guilds)
_SHARDS_HINT = "(write e.g. 0,1/4: shard ids 0 and 1 of 4 shards; unset: one process, all shards)"


def _shard_int(part: str, text: str) -> int:
    part = part.strip()
    if not part.isdigit() or len(part) > 5:
        raise ValueError(f"{text!r}: {part!r} is not a shard number {_SHARDS_HINT}")
    return int(part)


class Settings(BaseSettings):
    """Every setting is listed, with a comment, in `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # LLM
    model: str = Field("openai/gpt-4o-mini", alias="CODEBOT_MODEL")
    review_model: str | None = Field(None, alias="CODEBOT_REVIEW_MODEL")
    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    llm_timeout_s: float = Field(60.0, alias="CODEBOT_LLM_TIMEOUT_S", gt=0)
    llm_retries: int = Field(2, alias="CODEBOT_LLM_RETRIES", ge=0, le=10)
    stream: bool = Field(True, alias="CODEBOT_STREAM")  # stream replies: the answer shows as it is written
    turn_deadline_s: float = Field(300.0, alias="CODEBOT_TURN_DEADLINE_S", gt=0)
    temperature: float | None = Field(None, alias="CODEBOT_TEMPERATURE", ge=0, le=2)
    max_tokens: int = Field(2048, alias="CODEBOT_MAX_TOKENS", ge=16, le=200_000)
    review_max_tokens: int = Field(512, alias="CODEBOT_REVIEW_MAX_TOKENS", ge=16, le=200_000)

    # conversations
    db: Path = Field(Path("codebot.db"), alias="CODEBOT_DB")
    db_busy_timeout_s: float = Field(5.0, alias="CODEBOT_DB_BUSY_TIMEOUT_S", ge=0)
    db_pool_size: int = Field(10, alias="CODEBOT_DB_POOL_SIZE", ge=1, le=1000)
    turn_lease_s: float = Field(60.0, alias="CODEBOT_TURN_LEASE_S", ge=3, le=3600)
    admin_ids: Annotated[tuple[str, ...], NoDecode] = Field((), alias="CODEBOT_ADMIN_IDS")
    max_question_chars: int = Field(8000, alias="CODEBOT_MAX_QUESTION_CHARS", ge=10)
    history_max_messages: int = Field(40, alias="CODEBOT_HISTORY_MAX_MESSAGES", ge=2)
    history_max_tokens: int = Field(8000, alias="CODEBOT_HISTORY_MAX_TOKENS", ge=500)
    max_concurrent_turns: int = Field(32, alias="CODEBOT_MAX_CONCURRENT_TURNS", ge=1)
    shutdown_grace_s: float = Field(30.0, alias="CODEBOT_SHUTDOWN_GRACE_S", ge=0)
    event_ttl_s: float = Field(86400.0, alias="CODEBOT_EVENT_TTL_S", gt=0)
    log_level: str = Field("INFO", alias="CODEBOT_LOG_LEVEL")
    # a thread's workspace (files, kept variables) is deleted after this many days without a turn
    workspace_retention_days: float = Field(30.0, alias="CODEBOT_WORKSPACE_RETENTION_DAYS", gt=0)

    # operations: health, readiness and metrics listener (no port = off), log line format
    http_host: str = Field("127.0.0.1", alias="CODEBOT_HTTP_HOST")
    http_port: int | None = Field(None, alias="CODEBOT_HTTP_PORT", ge=0, le=65535)
    log_format: Literal["text", "json"] = Field("text", alias="CODEBOT_LOG_FORMAT")

    # Slack
    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")

    # Discord
    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_api_url: str | None = Field(None, alias="DISCORD_API_URL")
    discord_gateway_url: str | None = Field(None, alias="DISCORD_GATEWAY_URL")
    discord_shards: Annotated[DiscordShards | None, NoDecode] = Field(None, alias="CODEBOT_DISCORD_SHARDS")
    discord_cdn_url: str | None = Field(None, alias="DISCORD_CDN_URL")

    # sections (see _Sections): frozen values of their owners, not pydantic data, so not in model_dump
    sandbox: Annotated[InstanceOf[SandboxConfig], NoDecode] = Field(
        default_factory=SandboxConfig, exclude=True
    )
    limits: Annotated[InstanceOf[LimitDefaults], NoDecode] = Field(
        default_factory=LimitDefaults, exclude=True
    )
    # values of *_KEY/*_TOKEN/*_SECRET/*_PASSWORD variables, for the log formatter to scrub
    env_secrets: Annotated[tuple[str, ...], NoDecode] = Field((), exclude=True, repr=False)

    # CODEBOT_DB as written when it is a PostgreSQL URL (a Path would fold its "//"); `db` then keeps
    # its default so nothing that treats it as a file path ever sees the URL or its password.
    _database_url: str | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_database_url(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        url = None
        if isinstance(data, dict):
            for name in ("CODEBOT_DB", "db"):
                value = data.get(name)
                if isinstance(value, str) and value.strip().lower().startswith(_POSTGRES_SCHEMES):
                    url = value.strip()
                    data = {k: v for k, v in data.items() if k != name}
        settings = handler(data)
        if url is not None:
            settings.__pydantic_private__ = {**(settings.__pydantic_private__ or {}), "_database_url": url}
        return settings

    @property
    def database(self) -> str | Path:
        """What CODEBOT_DB names: a PostgreSQL URL (str, secret: never print it) or a SQLite file."""
        return self._database_url or self.db

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sections = _Sections(settings_cls, init_settings, env_settings, dotenv_settings)
        return init_settings, sections, env_settings, dotenv_settings, file_secret_settings

    @field_validator(*_SECTIONS, mode="before")
    @classmethod
    def _section(cls, v: Any, info: ValidationInfo) -> Any:
        return _SECTIONS[str(info.field_name)][1](v) if isinstance(v, Mapping) else v

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(",") if p.strip())
        return v

    @field_validator("discord_shards", mode="before")
    @classmethod
    def _shards(cls, v: Any) -> Any:
        return DiscordShards.parse(v) if isinstance(v, str) else v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return v

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def effective_review_model(self) -> str:
        return self.review_model or self.model

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every listed setting (by env name) that is unset."""
        fields = type(self).model_fields
        missing = []
        for name in names:
            value = getattr(self, name)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                missing.append(fields[name].alias or name)
        if missing:
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                "(set it in the environment or in .env; see .env.example)"
            )


class _Sections(PydanticBaseSettingsSource):
    """The sections' variables, sorted from what the other sources read (so each is read once)."""

    def __init__(self, settings_cls: type[BaseSettings], *layers: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._layers = layers  # keyword arguments, environment, .env: the first wins

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for whole sections

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, str] = {}
        for layer in reversed(self._layers):
            found = getattr(layer, "init_kwargs", None) or getattr(layer, "env_vars", {})
            # keyword arguments may be numbers or paths (CODEBOT_SANDBOX_POOL_SIZE=0); secrets stay hidden
            merged.update(
                {k.upper(): str(v) for k, v in found.items() if isinstance(v, str | int | float | Path)}
            )
        out: dict[str, Any] = {
            f: {k: v for k, v in merged.items() if k.startswith(p)} for f, (p, _) in _SECTIONS.items()
        }
        out["env_secrets"] = tuple(v for k, v in merged.items() if v and _SECRET_NAME.search(k))
        return out


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build Settings, turning validation errors into one clear ConfigError."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            # a section's message starts with the variable it is about
            problems.append(msg if loc in _SECTIONS else f"{loc}: {msg}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
