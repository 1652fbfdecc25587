"""Full outputs of recent steps for "Show full output", in memory only (the thread has them attached)."""

from __future__ import annotations

from collections import OrderedDict

from core.types import ThreadKey


class FullOutputs:
    """The newest outputs by (thread, step reference), bounded in count and in characters."""

    def __init__(
        self, *, max_entries: int = 200, max_chars: int = 8_000_000, max_item_chars: int = 1 << 20
    ) -> None:
        self._items: OrderedDict[tuple[ThreadKey, str], str] = OrderedDict()
        self._chars = 0
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._max_item = max_item_chars

    def put(self, key: ThreadKey, ref: str, text: str) -> None:
        text = text[: self._max_item]
        old = self._items.pop((key, ref), None)
        self._chars += len(text) - (len(old) if old is not None else 0)
        self._items[(key, ref)] = text
        while self._items and (len(self._items) > self._max_entries or self._chars > self._max_chars):
            _, dropped = self._items.popitem(last=False)
            self._chars -= len(dropped)

    def get(self, key: ThreadKey, ref: str) -> str | None:
        return self._items.get((key, ref))
