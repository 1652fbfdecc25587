"""Parse what a run says about its kept and dropped names: untrusted text, bounded, never raising.

The child (which shares its process with the code, so the code can forge it) sends one entry per line,
fields separated by tabs. Whatever arrives, the host keeps at most MAX_ENTRIES entries of short,
printable fields: the names go to the model, so they must not carry markup-breaking control characters.
"""

from __future__ import annotations

from sandbox.types import KeptName

MAX_ENTRIES = 200
NAME_CHARS = 100
TYPE_CHARS = 100
TEXT_CHARS = 200  # a summary or a reason


def parse_kept(text: str) -> tuple[KeptName, ...]:
    """Return the kept names: (identifier, type, summary); malformed entries are left out."""
    found = []
    for fields in _entries(text, 3):
        name, kind, summary = fields
        if _is_name(name):
            found.append(KeptName(name, _clean(kind, TYPE_CHARS), _clean(summary, TEXT_CHARS)))
    return tuple(found)


def parse_dropped(text: str) -> tuple[tuple[str, str], ...]:
    """Return the dropped names with the reason each was not kept (or not restored)."""
    return tuple((_clean(name, NAME_CHARS), _clean(why, TEXT_CHARS)) for name, why in _entries(text, 2))


def _entries(text: str, width: int) -> list[list[str]]:
    found = []
    for line in text.split("\n", MAX_ENTRIES)[:MAX_ENTRIES]:
        fields = line.split("\t")
        if len(fields) == width and fields[0]:
            found.append(fields)
    return found


def _is_name(name: str) -> bool:
    return len(name) <= NAME_CHARS and name.isidentifier()


def _clean(text: str, most: int) -> str:
    """Printable characters only, at most `most` of them."""
    clean = "".join(c if c.isprintable() else " " for c in text[: most * 2])
    return clean if len(clean) <= most else clean[: most - 3] + "..."
