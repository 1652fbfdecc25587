"""Prometheus metrics of one process, on a registry the composition root creates and passes down.

prometheus-client's default REGISTRY is a process-wide global; it is never used here, so two cores in
one process (tests) never share counts. Every label value comes from a small fixed set (never a thread,
user or workspace id), so the number of series stays bounded whatever the chats send.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

PLATFORMS = frozenset({"slack", "discord", "console"})
TURN_OUTCOMES = frozenset({"ok", "error", "limited", "abandoned", "undelivered", "none"})
RISKS = frozenset({"low", "medium", "high"})
SANDBOX_OUTCOMES = frozenset({"ok", "error", "timeout", "killed", "unavailable"})
KILL_REASONS = frozenset({"timeout", "cpu", "memory", "output"})
LLM_ERROR_KINDS = frozenset(
    {"rate_limit", "server", "timeout", "connection", "garbled", "auth", "not_found", "bad_request"}
    | {"cancelled", "other"}
)

# Seconds; LLM calls and turns are slow, store calls fast, so each gets its own buckets.
_LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120)
_TURN_BUCKETS = (0.5, 1, 2, 5, 10, 20, 40, 60, 120, 300)
_SANDBOX_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
# A turn's store calls together: fine steps around the 5 ms goal (issue 15), so its p50 can be read off.
_TURN_STORE_BUCKETS = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1)


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


class Metrics:
    """Typed recording helpers over one CollectorRegistry; cheap enough for every call on the hot path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._turn_metrics(r)
        self._run_metrics(r)
        self._llm_s = Histogram(
            "codebot_llm_request_seconds",
            "LLM request attempts, by result",
            ["result"],
            buckets=_LLM_BUCKETS,
            registry=r,
        )
        self._llm_errors = Counter(
            "codebot_llm_errors", "Failed LLM request attempts, by kind", ["kind"], registry=r
        )
        self._store_s = Histogram(
            "codebot_store_seconds", "Store calls, by operation", ["op"], buckets=_STORE_BUCKETS, registry=r
        )
        self._turn_store_s = Histogram(
            "codebot_turn_store_seconds",
            "Time one turn spent in store calls, its event's claim included",
            buckets=_TURN_STORE_BUCKETS,
            registry=r,
        )
        self._store_errors = Counter(
            "codebot_store_errors", "Store calls that failed, by operation", ["op"], registry=r
        )
        self._platform_errors = Counter(
            "codebot_platform_api_errors", "Chat platform API calls that failed", ["platform"], registry=r
        )
        self._ready = Gauge("codebot_ready", "1 when the last readiness check passed", registry=r)

    def _turn_metrics(self, r: CollectorRegistry) -> None:
        self._turns = Counter(
            "codebot_turns", "Turns finished, by platform and outcome", ["platform", "outcome"], registry=r
        )
        self._turn_s = Histogram(
            "codebot_turn_seconds",
            "Wall time of a turn, admission to last reply",
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self._waiting = Gauge(
            "codebot_turns_waiting",
            "Turns accepted but not answering yet (admission, locks, slots)",
            registry=r,
        )
        self._running = Gauge("codebot_turns_running", "Turns the model is working on", registry=r)

    def _run_metrics(self, r: CollectorRegistry) -> None:
        self._steps = Counter(
            "codebot_steps", "Programs the model submitted (execute_code steps)", registry=r
        )
        self._refusals = Counter(
            "codebot_refusals", "Programs the safety review refused, by risk", ["risk"], registry=r
        )
        self._runs = Counter("codebot_sandbox_runs", "Sandbox runs, by outcome", ["outcome"], registry=r)
        self._run_s = Histogram(
            "codebot_sandbox_seconds", "Wall time of sandbox runs", buckets=_SANDBOX_BUCKETS, registry=r
        )
        self._kills = Counter(
            "codebot_sandbox_kills", "Sandbox runs killed, by reason", ["reason"], registry=r
        )

    def turn_finished(self, platform: str, outcome: str, seconds: float) -> None:
        self._turns.labels(_bounded(platform, PLATFORMS), _bounded(outcome, TURN_OUTCOMES)).inc()
        self._turn_s.observe(max(0.0, seconds))

    def turn_waiting(self, delta: int) -> None:
        self._waiting.inc(delta)

    def turn_running(self, delta: int) -> None:
        self._running.inc(delta)

    def step(self) -> None:
        self._steps.inc()

    def refusal(self, risk: str) -> None:
        self._refusals.labels(_bounded(risk, RISKS)).inc()

    def sandbox_run(self, outcome: str, seconds: float, killed_reason: str | None) -> None:
        """Record one run; `outcome` is RunResult.outcome ("killed:<reason>" counts as killed)."""
        self._runs.labels(_bounded(outcome.split(":", 1)[0], SANDBOX_OUTCOMES)).inc()
        self._run_s.observe(max(0.0, seconds))
        if killed_reason:
            self._kills.labels(_bounded(killed_reason, KILL_REASONS)).inc()

    def sandbox_unavailable(self) -> None:
        self._runs.labels("unavailable").inc()

    def llm_attempt(self, seconds: float, error_kind: str | None) -> None:
        self._llm_s.labels("ok" if error_kind is None else "error").observe(max(0.0, seconds))
        if error_kind is not None:
            self._llm_errors.labels(_bounded(error_kind, LLM_ERROR_KINDS)).inc()

    def store_call(self, op: str, seconds: float, failed: bool) -> None:
        """`op` is a Store method name: a fixed set defined by the code, not by any input."""
        self._store_s.labels(op).observe(max(0.0, seconds))
        if failed:
            self._store_errors.labels(op).inc()

    def turn_store(self, seconds: float) -> None:
        self._turn_store_s.observe(max(0.0, seconds))

    def platform_error(self, platform: str) -> None:
        self._platform_errors.labels(_bounded(platform, PLATFORMS)).inc()

    def ready(self, ok: bool) -> None:
        self._ready.set(1 if ok else 0)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
