"""The in-sandbox workspace helpers, driven directly: state containers and names (no sandbox needed)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox import workspace_box as box_mod


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def saved_blob(ns: dict[str, object]) -> bytes:
    box = box_mod.Box(True, 1 << 20)
    parts, _, _ = box_mod.save(box, ns)
    return b"".join(parts)


def restore(blob: bytes, pipe_w: int) -> tuple[dict[str, object], list[tuple[str, str]]]:
    box = box_mod.Box(True, 1 << 20)
    box.state, box.restoring, box.pipe_w = blob, True, pipe_w
    ns: dict[str, object] = {}
    box_mod.restore(box, ns)
    return ns, box.dropped


def test_a_saved_namespace_restores_entry_by_entry(pipe: tuple[int, int]) -> None:
    blob = saved_blob({"a": [1, 2], "os": os, "text": "hi", "__name__": "__main__"})
    ns, dropped = restore(blob, pipe[1])
    assert ns == {"a": [1, 2], "os": os, "text": "hi"} and dropped == []
    assert os.read(pipe[0], 16) == b"P\n"  # the supervisor hears the state is in


def test_every_truncation_of_a_blob_is_refused_or_partial_never_raising(pipe: tuple[int, int]) -> None:
    blob = saved_blob({"a": list(range(50)), "b": {"k": "v"}, "c": 3.5})
    for cut in range(len(blob)):
        ns, dropped = restore(blob[:cut], pipe[1])
        assert set(ns) <= {"a", "b", "c"}
        if cut < len(blob):
            assert dropped or len(ns) < 3
        assert os.read(pipe[0], 16) == b"P\n"


def test_a_name_that_is_not_an_identifier_makes_the_blob_corrupt(pipe: tuple[int, int]) -> None:
    blob = box_mod.MAGIC + b"Li4v p 1\nx"  # "../"
    ns, dropped = restore(blob, pipe[1])
    assert ns == {} and dropped[0][0] == "(state)"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("data.csv", True),
        ("données 2024.xlsx", True),
        ("../x.csv", False),
        ("a/b", False),
        (".env", False),
        ("..", False),
        ("", False),
        ("x\x00y", False),
        ("line\nbreak", False),
        ("a" * 256, False),
        ("\udcff", False),  # surrogate-escaped byte: not printable
    ],
)
def test_safe_names(name: str, ok: bool) -> None:
    assert box_mod.safe_name(name) is ok


def test_encoded_names_are_bounded() -> None:
    many = [(f"v{i}", "int", "1") for i in range(box_mod.MAX_ENTRIES + 10)]
    token = box_mod.encode_names(many)
    import base64

    lines = base64.b64decode(token).decode().split("\n")
    assert len(lines) == box_mod.MAX_ENTRIES and lines[-1].startswith("(more)")
    assert box_mod.encode_names([]) == b"-"
