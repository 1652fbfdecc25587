"""`codebot doctor`: say plainly what works on this machine and how to fix what does not."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from core.settings import ConfigError, Settings
from core.store.base import StoreError

PROBE_DEADLINE_S = 120.0  # a local model on a small machine may need a while for its first reply
PROBE_CODE = "result = sum(range(10))"


def _line(ok: bool, name: str, detail: str) -> str:
    return f"[{'ok' if ok else '!!'}] {name}: {detail}"


def settings_lines(settings: Settings) -> list[str]:
    """Describe the LLM and platform settings without revealing any secret."""
    key = settings.openai_api_key is not None and bool(settings.openai_api_key.get_secret_value())
    endpoint = settings.openai_base_url or "OpenAI (api.openai.com)"
    llm_ok = key or settings.openai_base_url is not None
    llm = f"model {settings.model}, review model {settings.effective_review_model}, endpoint {endpoint}, "
    llm += f"API key {'set' if key else 'not set'}"
    llm += "" if llm_ok else " (set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server)"
    lines = [_line(llm_ok, "llm", llm)]
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
    from bot.wiring import store_for

    exists = await asyncio.to_thread(settings.db.exists)
    if not exists:  # checking must not create it
        parent = settings.db.parent.resolve()
        writable = await asyncio.to_thread(os.access, parent, os.W_OK)
        where = f"{settings.db} does not exist yet; it is created at the first start"
        return _line(writable, "store", where if writable else f"{where}, but {parent} is not writable")
    store = store_for(settings, pool_size=1)
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


async def endpoint_lines(settings: Settings) -> list[str]:
    """Probe an OpenAI-compatible endpoint (OPENAI_BASE_URL) the way the bot will use it.

    Reachable and the model listed, a request offering tools accepted, and which structured-output path
    the safety review gets there. OpenAI itself is not probed: it needs no such check, and costs money.
    """
    if not settings.openai_base_url:
        return []
    from bot.wiring import llm_client

    try:
        client = llm_client(settings)
    except ConfigError as exc:
        return [_line(False, "llm/endpoint", str(exc))]
    try:
        models = await _models_line(client, settings)
        if models.startswith("[!!]") and "not reachable" in models:
            return [models]
        return [models, await _tools_line(client), await _structured_line(client)]
    finally:
        await client.aclose()


async def _models_line(client: Any, settings: Settings) -> str:
    provider = client.model("agent").provider
    name = provider._model_name(settings.model)
    try:
        listed = [m.id async for m in provider.async_client.models.list()]
    except Exception as exc:  # any failure here is the answer to "is it reachable"
        return _line(False, "llm/endpoint", f"{settings.openai_base_url} is not reachable: {exc}"[:300])
    if name in listed:
        return _line(True, "llm/endpoint", f"{settings.openai_base_url} lists {name}")
    shown = ", ".join(listed[:8]) or "no models"
    return _line(
        False, "llm/endpoint", f"model {name} is not listed there (it has: {shown}); fix CODEBOT_MODEL"
    )


async def _tools_line(client: Any) -> str:
    from mirascope import llm

    from core.llm import LLMFailure
    from core.tools import execute_code

    model = client.model("agent")
    messages = [llm.messages.user("Run print(6 * 7) with the execute_code tool.")]
    try:
        await client.call(
            lambda: model.context_call_async(messages, ctx=llm.Context(deps=None), tools=[execute_code]),
            deadline=time.monotonic() + PROBE_DEADLINE_S,
        )
    except LLMFailure as exc:
        if exc.kind != "cut":  # a reply cut at max_tokens still means the request was accepted
            return _line(False, "llm/tools", f"a request offering tools failed: {exc.user_message}")
    return _line(True, "llm/tools", "a request offering the execute_code tool is accepted")


async def _structured_line(client: Any) -> str:
    from core.review.llm_review import LLMReview, ReviewUnavailable

    try:
        verdict, _ = await LLMReview(client)(PROBE_CODE, (), deadline=time.monotonic() + PROBE_DEADLINE_S)
    except ReviewUnavailable as exc:
        return _line(False, "llm/structured output", f"no usable review verdict ({exc.reason})")
    path = "strict JSON schema" if verdict.check == "llm" else verdict.check.removeprefix("llm ").strip("()")
    return _line(True, "llm/structured output", f"the safety review gets verdicts through {path}")


async def run_doctor(settings: Settings) -> int:
    """Print every check; exit 0 only when the bot can answer questions safely."""
    from sandbox.doctor import report

    lines = settings_lines(settings)
    lines += await endpoint_lines(settings)
    lines.append(await store_line(settings))
    checks = await asyncio.to_thread(report, settings.sandbox)
    lines += [_line(c.ok, f"sandbox/{c.name}", c.detail) for c in checks]
    print("\n".join(lines))
    failed = [ln for ln in lines if ln.startswith("[!!]")]
    print(f"\n{len(failed)} problem(s) found." if failed else "\nAll checks passed.")
    return 1 if failed else 0
