"""Tell code that needs no pre-imported package from code that does, so it can run on a lean warm slot.

A warm slot whose supervisor pre-imported numpy and matplotlib forks the code's process from a ~100 MB
interpreter: the page tables it inherits take the kernel 1-2.5 ms to tear down when that process exits,
and the supervisor can only report the exit status after it (a real wait, never the code's word). A
lean slot's supervisor imported nothing, so its child exits in ~0.3 ms. Code that imports only modules
the lean interpreter already holds (or builtins that cost nothing to import) runs there; anything else,
any dynamic import, and a long text go to the pre-imported slots, whose modules a lean slot would have
to import itself. The scan is a regex, not a parse: words in strings and comments count as imports,
which only ever sends code to the pre-imported slot (slower, never wrong).
"""

from __future__ import annotations

import re

MAX_SCAN_CHARS = 64_000  # longer code goes to a pre-imported slot without a scan
# Already in the lean supervisor's child (its own imports), or built into the interpreter.
LEAN_MODULES = frozenset(
    {
        "abc",
        "array",
        "binascii",
        "builtins",
        "cmath",
        "codecs",
        "errno",
        "gc",
        "io",
        "itertools",
        "marshal",
        "math",
        "os",
        "resource",
        "select",
        "stat",
        "sys",
        "time",
        "unicodedata",
        "zlib",
    }
)
# one statement's names only: [ \t], never \s, or one match would swallow the import lines after it
_IMPORT = re.compile(r"\b(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w. \t,]+))")
_DYNAMIC = re.compile(r"__import__|importlib|\bexec\b|\beval\b")


def is_lean(code: str) -> bool:
    """Return True if code imports nothing but LEAN_MODULES (as far as a plain scan can tell)."""
    if len(code) > MAX_SCAN_CHARS or _DYNAMIC.search(code) or "\\\n" in code:  # a continued line too
        return False
    for match in _IMPORT.finditer(code):
        names = [match.group(1)] if match.group(1) else match.group(2).split(",")
        for name in names:
            words = name.split()
            if not words or words[0].split(".")[0] not in LEAN_MODULES:
                return False
    return True


def slots(pool_size: int, preimport: tuple[str, ...]) -> int:
    """Return how many lean warm slots a sandbox keeps: one beside a pool that pre-imports something."""
    return 1 if pool_size > 0 and preimport else 0
