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
        self.registry = r = registry or CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"codebot_{name}", doc, labels, registry=r)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"codebot_{name}", doc, registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(f"codebot_{name}", doc, labels, buckets=buckets, registry=r)

        self._turns = counter("turns", "Turns finished, by platform and outcome", "platform", "outcome")
        self._turn_s = histogram(
            "turn_seconds", "Wall time of a turn, admission to last reply", _TURN_BUCKETS
        )
        self._waiting = gauge(
            "turns_waiting", "Turns accepted but not answering yet (admission, locks, slots)"
        )
        self._running = gauge("turns_running", "Turns the model is working on")
        self._steps = counter("steps", "Programs the model submitted (execute_code steps)")
        self._refusals = counter("refusals", "Programs the safety review refused, by risk", "risk")
        self._runs = counter("sandbox_runs", "Sandbox runs, by outcome", "outcome")
        self._run_s = histogram("sandbox_seconds", "Wall time of sandbox runs", _SANDBOX_BUCKETS)
        self._kills = counter("sandbox_kills", "Sandbox runs killed, by reason", "reason")
        self._llm_s = histogram(
            "llm_request_seconds", "LLM request attempts, by result", _LLM_BUCKETS, "result"
        )
        self._llm_errors = counter("llm_errors", "Failed LLM request attempts, by kind", "kind")
        self._store_s = histogram("store_seconds", "Store calls, by operation", _STORE_BUCKETS, "op")
        self._turn_store_s = histogram(
            "turn_store_seconds",
            "Time one turn spent in store calls, its event's claim included",
            _TURN_STORE_BUCKETS,
        )
        self._store_errors = counter("store_errors", "Store calls that failed, by operation", "op")
        self._platform_errors = counter(
            "platform_api_errors", "Chat platform API calls that failed", "platform"
        )
        self._ready = gauge("ready", "1 when the last readiness check passed")

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
