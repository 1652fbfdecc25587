"""Readiness: can this process take a question right now? Store, sandbox, LLM settings, not stopping."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from core.metrics import Metrics
from core.settings import Settings
from core.store.base import StoreError, Workspace

if TYPE_CHECKING:
    from core.service import Codebot

log = logging.getLogger(__name__)

STARTING = "starting"
SHUTTING_DOWN = "shutting down"
MAX_REASON_CHARS = 300  # the reason is for an operator's probe, not a place for a whole traceback


class Readiness:
    """Checks one running core; each check is bounded so a probe answers promptly."""

    def __init__(
        self, settings: Settings, store: Any, sandbox: Any, core: Codebot, *, timeout_s: float = 3.0
    ) -> None:
        self._settings = settings
        self._store = store
        self._sandbox = sandbox
        self._core = core
        self._timeout_s = timeout_s

    async def problems(self) -> list[str]:
        """What stops this process from answering; empty when it is ready."""
        if not self._core.accepting:
            return [SHUTTING_DOWN]
        found = [p for p in (self._llm_problem(), self._sandbox_problem()) if p]
        store = await self._store_problem()
        return [*found, store] if store else found

    def _llm_problem(self) -> str | None:
        s = self._settings
        if s.model.startswith("openai/") and not (s.openai_base_url or s.openai_api_key):
            return "llm: neither OPENAI_BASE_URL nor OPENAI_API_KEY is set"
        return None

    def _sandbox_problem(self) -> str | None:
        broken = getattr(self._sandbox, "broken", None)
        if broken:
            return f"sandbox: {broken}"
        inner = getattr(self._sandbox, "inner", self._sandbox)
        try:
            getattr(inner, "isolation", None)  # raises until the sandbox has started
        except RuntimeError:
            return "sandbox: not started"
        return None

    async def _store_problem(self) -> str | None:
        health = getattr(self._store, "health", None)
        try:
            async with asyncio.timeout(self._timeout_s):
                if health is not None:  # takes the write lock and checks the disk (SQLite)
                    state = await health()
                    return None if state == "ok" else f"store: {state}"
                await self._store.limits(Workspace("codebot", "readyz"))  # any store: one round trip
                return None
        except TimeoutError:
            return f"store: no answer within {self._timeout_s:g} s"
        except StoreError as exc:
            return f"store: {exc}"
        except Exception as exc:  # a probe must answer, whatever the store raised
            log.warning("store readiness check failed: %r", exc)
            return f"store: {type(exc).__name__}: {exc}"


class Ops:
    """Metrics and readiness of one process: created by the CLI, completed by open_core."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self._readiness: Readiness | None = None

    def bind(self, readiness: Readiness) -> None:
        self._readiness = readiness

    async def problems(self) -> list[str]:
        """Empty when ready; before the core is up, "starting"."""
        found = [STARTING] if self._readiness is None else await self._readiness.problems()
        found = [p[:MAX_REASON_CHARS] for p in found]
        self.metrics.ready(not found)
        return found
