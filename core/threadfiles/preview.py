"""What the model is told about one file: its kind and, for text, its first lines (bounded)."""

from __future__ import annotations

PREVIEW_LINES = 5
PREVIEW_LINE_CHARS = 160
_SNIFF_BYTES = 4096

_KINDS = {
    ".csv": "CSV",
    ".tsv": "TSV",
    ".json": "JSON",
    ".jsonl": "JSON lines",
    ".txt": "text",
    ".md": "text",
    ".py": "Python",
    ".xlsx": "Excel",
    ".xls": "Excel",
    ".parquet": "Parquet",
    ".pkl": "pickle",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".gif": "image",
    ".svg": "image",
    ".webp": "image",
    ".pdf": "PDF",
    ".zip": "zip archive",
}


def kind_of(name: str, preview: str) -> str:
    """Return a short type for the model: by extension, else text or binary."""
    dot = name.rfind(".")
    kind = _KINDS.get(name[dot:].lower()) if dot > 0 else None
    return kind or ("text" if preview else "binary")


def text_preview(data: bytes) -> str:
    """Return the first lines of text data, bounded; "" when the data does not look like text."""
    head = data[:_SNIFF_BYTES]
    if not head or b"\x00" in head:
        return ""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the sniff boundary
            return ""
        text = head[: exc.start].decode("utf-8")
    text = "".join(ch if ch in "\t\n" or ch.isprintable() else "?" for ch in text.replace("\r\n", "\n"))
    lines = text.splitlines()[:PREVIEW_LINES]
    clipped = [line if len(line) <= PREVIEW_LINE_CHARS else line[:PREVIEW_LINE_CHARS] + "…" for line in lines]
    return "\n".join(clipped)
