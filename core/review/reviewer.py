"""The safety review: static analysis plus an LLM verdict, combined according to the safety mode.

Modes:
- off: no review (the sandbox alone contains the code).
- strict: any static finding refuses without asking the LLM; otherwise the LLM must allow the code at
  a risk below high. If the LLM review fails (error, malformed verdict twice), the code is refused:
  strict mode never runs unreviewed code.
- standard: the LLM decides, told about the static findings. If the LLM review fails, code with risky
  static findings is refused and code without them runs (with a reason saying the LLM review was
  skipped), because the sandbox remains the wall.
With no LLM client at all, the same fallbacks apply as for a failed LLM review.

Only definitive verdicts are cached (keyed by sha256 of mode and code); fallbacks are retried next time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from core.llm import LLMClient
from core.review import parts
from core.review.llm_review import LLMReview, ReviewUnavailable, ReviewVerdict
from core.review.static import analyse
from core.types import Finding, RiskLevel, Verdict

MODES = ("strict", "standard", "off")
MAX_REASONS = 5
MAX_REASON_CHARS = 300


def _finding_reasons(findings: Sequence[Finding]) -> tuple[str, ...]:
    return tuple(f"line {f.line}: the code {f.message}" for f in findings)


def _risky(findings: Sequence[Finding]) -> bool:
    """Syntax errors are findings but not risks: such code cannot do anything."""
    return any(f.rule != "syntax" for f in findings)


class Reviewer:
    """Reviews code for one safety mode at a time; shared by all turns of a process."""

    def __init__(self, llm: LLMClient | None, cache_size: int = 1024) -> None:
        self._llm_review = LLMReview(llm) if llm is not None else None
        self._cache: OrderedDict[str, Verdict] = OrderedDict()
        self._cache_size = cache_size

    async def review(self, code: str, mode: str, *, deadline: float) -> tuple[Verdict, int]:
        """Return the verdict for `code` under `mode` and the LLM tokens spent on it."""
        if mode not in MODES:
            raise ValueError(f"unknown safety mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "off":
            return Verdict(allowed=True, risk="low", checks=(), mode="off"), 0
        key = hashlib.sha256(f"{mode}\0{code}".encode()).hexdigest()
        if (hit := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return dataclasses.replace(hit, cached=True), 0
        findings = analyse(code)
        if mode == "strict" and findings:
            verdict = Verdict(
                allowed=False,
                risk="high" if _risky(findings) else "low",
                reasons=_finding_reasons(findings),
                findings=findings,
                checks=("static",),
                mode=mode,
            )
            return self._remember(key, verdict), 0
        if self._llm_review is None:
            return _fallback(mode, findings, "no LLM reviewer is configured"), 0
        code_parts = parts.split(code)
        if len(code_parts) > parts.MAX_PARTS:  # never run a tail nobody reviewed
            reason = parts.too_long_reason(len(code))
            verdict = Verdict(False, "medium", (reason,), findings, ("static",), mode)
            return self._remember(key, verdict), 0
        try:
            answer, tokens = await self._review_parts(code_parts, findings, deadline)
        except ReviewUnavailable as exc:
            return _fallback(mode, findings, exc.reason), exc.tokens
        return self._remember(key, _combine(mode, findings, answer)), tokens

    async def _review_parts(
        self, code_parts: list[parts.Part], findings: tuple[Finding, ...], deadline: float
    ) -> tuple[ReviewVerdict, int]:
        """Review each part in turn (each sees its own static notes); one verdict for the whole."""
        assert self._llm_review is not None
        if len(code_parts) == 1:
            return await self._llm_review(code_parts[0].code, findings, deadline=deadline)
        verdicts, spent = [], 0
        for p in code_parts:
            notes = [f for f in findings if p.first_line <= f.line <= p.last_line]
            where = f"part {p.index} of {p.count}, lines {p.first_line}-{p.last_line}"
            try:
                verdict, tokens = await self._llm_review(p.code, notes, deadline=deadline, part=where)
            except ReviewUnavailable as exc:
                raise ReviewUnavailable(exc.reason, spent + exc.tokens) from exc
            verdicts.append(verdict)
            spent += tokens
        return parts.merge(code_parts, verdicts), spent

    def _remember(self, key: str, verdict: Verdict) -> Verdict:
        self._cache[key] = verdict
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return verdict


def _combine(mode: str, findings: tuple[Finding, ...], answer: ReviewVerdict) -> Verdict:
    # The reviewer's words go to the chat: keep them few and short (a multi-part note stays last).
    reasons = tuple(r.strip()[:MAX_REASON_CHARS] for r in answer.reasons if r.strip())
    if len(reasons) > MAX_REASONS:
        reasons = (*reasons[: MAX_REASONS - 1], reasons[-1])
    allowed = answer.allowed
    if mode == "strict" and allowed and answer.risk == "high":
        allowed = False
        reasons = (*reasons, "strict mode refuses code the reviewer rates high risk")
    return Verdict(
        allowed=allowed,
        risk=answer.risk,
        reasons=reasons,
        findings=findings,
        checks=("static", answer.check),
        mode=mode,
    )


def _fallback(mode: str, findings: tuple[Finding, ...], why: str) -> Verdict:
    """Verdict when the LLM review is unavailable: never silently allow in strict mode."""
    risk: RiskLevel = "medium"
    if mode == "strict":
        reason = (
            f"The safety review could not be completed ({why}); strict mode does not run unreviewed code."
        )
        return Verdict(False, risk, (reason,), findings, ("static",), mode)
    if _risky(findings):
        reason = f"The LLM safety review could not be completed ({why}) and the code has risky constructs."
        return Verdict(False, "high", (reason, *_finding_reasons(findings)), findings, ("static",), mode)
    reason = f"The LLM safety review was skipped ({why}); no risky constructs were found."
    return Verdict(True, risk, (reason,), findings, ("static",), mode)
