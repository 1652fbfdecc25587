"""Render replies as plain terminal text (pure functions)."""

from __future__ import annotations

import textwrap

from core.outcome import view
from core.text import escape_controls
from core.types import AnswerReply, CodeReply, NoticeReply, Reply, ResultReply, Verdict, VerdictReply
from sandbox.types import RunResult

MAX_SHOWN = 4000  # characters of stdout/stderr shown per step; the rest is summarised


def _indent(text: str) -> str:
    return textwrap.indent(text.rstrip("\n"), "    ")


def _clip(text: str) -> str:
    if len(text) <= MAX_SHOWN:
        return text
    return text[:MAX_SHOWN] + f"\n… ({len(text) - MAX_SHOWN:,} more characters not shown)"


def render_verdict(step: int, v: Verdict) -> str:
    status = "allowed" if v.allowed else "REFUSED"
    checks = " + ".join(v.checks) or "none"
    lines = [f"[step {step}] safety review: {status} (risk {v.risk}; checks: {checks}, mode {v.mode})"]
    lines += [f"    - {' '.join(reason.split())}" for reason in v.reasons]  # one line each
    return "\n".join(lines)


_STATUS = {"ok": "ok", "exit": "failed, exit {code}", "error": "failed, exit {code}", "timeout": "timeout"}


def render_result(step: int, r: RunResult) -> str:
    v = view(r)
    status = _STATUS.get(v.status, f"killed:{v.killed_reason}").format(code=v.exit_code)
    lines = [f"[step {step}] result: {status} in {v.took}"]
    for part in v.parts:
        lines += [f"  {part.label}:", _indent(_clip(part.text))]
    lines += [f"  ({note})" for note in v.notes]
    return "\n".join(lines)


def render(reply: Reply) -> str:
    """Return the terminal text for one reply; controls from the code or the model are shown escaped."""
    return escape_controls(_render(reply))


def _answer(text: str) -> str:
    # Continuation lines are indented so an answer cannot print a line that looks like the bot's own.
    first, *rest = text.strip().split("\n")
    return "\n".join([f"answer: {first}", *(f"    {line}" for line in rest)])


def _render(reply: Reply) -> str:
    match reply:
        case CodeReply(step=step, code=code):
            return f"[step {step}] code:\n    ```python\n{_indent(code)}\n    ```"
        case VerdictReply(step=step, verdict=verdict):
            return render_verdict(step, verdict)
        case ResultReply(step=step, result=result):
            return render_result(step, result)
        case AnswerReply(text=text):
            return _answer(text)
        case NoticeReply(kind=kind, text=text):
            return f"({kind}) {text}"
    raise TypeError(f"unknown reply {reply!r}")
