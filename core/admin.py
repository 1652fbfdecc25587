"""Who is an admin, decided in one place: the platform says so, or the operator listed the user."""

from __future__ import annotations

from core.types import Author


class Admins:
    def __init__(self, admin_ids: tuple[str, ...] = ()) -> None:
        self._ids = frozenset(admin_ids)

    def is_admin(self, author: Author) -> bool:
        """Platform admins (workspace admins, Manage Server) and the ids in CODEBOT_ADMIN_IDS."""
        return author.is_admin or author.id in self._ids
