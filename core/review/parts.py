"""Split a long program into parts the LLM reviewer can read whole, and merge the parts' verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.review.llm_review import MAX_CODE_CHARS, ReviewVerdict

PART_CHARS = MAX_CODE_CHARS  # what the reviewer is shown at once
MAX_PARTS = 4  # longer programs are refused rather than run with a part nobody reviewed
_RISK_ORDER = ("low", "medium", "high")


@dataclass(frozen=True)
class Part:
    """One piece of a program, with where it sits in the whole."""

    index: int  # 1-based
    count: int
    first_line: int
    last_line: int
    code: str


def split(code: str, part_chars: int = PART_CHARS) -> list[Part]:
    """Cut `code` at line ends into parts of at most `part_chars` characters (long lines by characters)."""
    pieces: list[tuple[int, int, str]] = []
    current, first, line_no = "", 1, 0
    for line_no, line in enumerate(code.splitlines(keepends=True), start=1):
        while len(line) > part_chars:  # one enormous line: its own parts
            if current:
                pieces.append((first, line_no, current))
                current = ""
            pieces.append((line_no, line_no, line[:part_chars]))
            line = line[part_chars:]
        if current and len(current) + len(line) > part_chars:
            pieces.append((first, line_no - 1, current))
            current = ""
        if not current:
            first = line_no
        current += line
    if current or not pieces:
        pieces.append((first, max(line_no, first), current))
    return [Part(i, len(pieces), a, b, text) for i, (a, b, text) in enumerate(pieces, start=1)]


def merge(parts: Sequence[Part], verdicts: Sequence[ReviewVerdict]) -> ReviewVerdict:
    """One verdict for the whole program: allowed only if every part is, at the highest risk seen."""
    risk = max((v.risk for v in verdicts), key=_RISK_ORDER.index)
    pairs = zip(parts, verdicts, strict=True)
    reasons = [f"lines {p.first_line}-{p.last_line}: {r}" for p, v in pairs for r in v.reasons]
    note = f"The program is long, so the LLM review read it whole in {len(parts)} parts."
    return ReviewVerdict(allowed=all(v.allowed for v in verdicts), risk=risk, reasons=[*reasons, note])


def too_long_reason(chars: int, part_chars: int = PART_CHARS, max_parts: int = MAX_PARTS) -> str:
    """Why a program past the reviewer's reach was refused, for the chat."""
    return (
        f"The program is {chars:,} characters; the safety review reads at most {part_chars * max_parts:,}, "
        "so it was not run. Ask for a shorter program (read data from a file instead of pasting it in)."
    )
