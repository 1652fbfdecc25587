"""`codebot doctor`: say plainly what works on this machine and how to fix what does not."""

from __future__ import annotations

import asyncio
import os

from core.settings import Settings
from core.store.base import StoreError


def _line(ok: bool, name: str, detail: str) -> str:
    return f"[{'ok' if ok else '!!'}] {name}: {detail}"


def settings_lines(settings: Settings) -> list[str]:
    """Describe the LLM and platform settings without revealing any secret."""
    key = settings.openai_api_key is not None and bool(settings.openai_api_key.get_secret_value())
    endpoint = settings.openai_base_url or "OpenAI (api.openai.com)"
    llm_ok = key or settings.openai_base_url is not None
    lines = [
        _line(
            llm_ok,
            "llm",
            f"model {settings.model}, review model {settings.effective_review_model}, endpoint {endpoint}, "
            f"API key {'set' if key else 'not set'}"
            + ("" if llm_ok else " (set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server)"),
        )
    ]
    for platform, names in (
        ("slack", ("slack_bot_token", "slack_app_token", "slack_signing_secret")),
        ("discord", ("discord_token",)),
    ):
        present = [n.upper() for n in names if getattr(settings, n) is not None]
        lines.append(_line(True, platform, f"configured: {', '.join(present) or 'nothing (optional)'}"))
    return lines


async def store_line(settings: Settings) -> str:
    database = settings.database
    if isinstance(database, str):  # a PostgreSQL URL: looked at, never migrated, password never shown
        return await _postgres_line(database, settings.db_busy_timeout_s)
    from core.store.sqlite import SQLiteStore

    exists = await asyncio.to_thread(settings.db.exists)
    if not exists:  # checking must not create it
        parent = settings.db.parent.resolve()
        writable = await asyncio.to_thread(os.access, parent, os.W_OK)
        where = f"{settings.db} does not exist yet; it is created at the first start"
        return _line(writable, "store", where if writable else f"{where}, but {parent} is not writable")
    store = SQLiteStore(settings.db, busy_timeout_s=settings.db_busy_timeout_s)
    try:
        await store.open()
        health = await store.health()
        return _line(health == "ok", "store", f"{settings.db}: {health}")
    except StoreError as exc:
        return _line(False, "store", str(exc))
    finally:
        await store.close()


async def _postgres_line(dsn: str, timeout_s: float) -> str:
    from core.store.postgres_probe import probe

    try:
        ok, detail = (await probe(dsn, timeout_s=max(timeout_s, 1.0))).summary()
    except StoreError as exc:
        return _line(False, "store", str(exc))
    return _line(ok, "store", detail)


async def run_doctor(settings: Settings) -> int:
    """Print every check; exit 0 only when the bot can answer questions safely."""
    from bot.wiring import environment, sandbox_config
    from sandbox.doctor import report

    lines = settings_lines(settings)
    lines.append(await store_line(settings))
    checks = await asyncio.to_thread(report, sandbox_config(environment()))
    lines += [_line(c.ok, f"sandbox/{c.name}", c.detail) for c in checks]
    print("\n".join(lines))
    failed = [ln for ln in lines if ln.startswith("[!!]")]
    print(f"\n{len(failed)} problem(s) found." if failed else "\nAll checks passed.")
    return 1 if failed else 0
