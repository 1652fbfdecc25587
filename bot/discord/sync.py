"""Deliberate slash-command sync: only when the command set changed, or when an operator asks.

Discord rate-limits command registration and a sync overwrites every command, so syncing blindly on
every start is wasteful. The fingerprint of the last global sync is kept in a small file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path

import discord
from discord import app_commands

log = logging.getLogger(__name__)


def fingerprint(tree: app_commands.CommandTree) -> str:
    """Hash of the global command payload exactly as a sync would send it."""
    payload = sorted((cmd.to_dict(tree) for cmd in tree.get_commands()), key=lambda c: str(c["name"]))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CommandSync:
    """Syncs a CommandTree globally when its fingerprint differs from the stored one."""

    def __init__(self, tree: app_commands.CommandTree, state_file: Path) -> None:
        self._tree = tree
        self._state_file = state_file

    async def sync_if_changed(self, application_id: int | None) -> bool:
        """Sync globally when the commands (or the application) changed since the last sync."""
        wanted = f"{application_id} {fingerprint(self._tree)}"
        if await asyncio.to_thread(self._read) == wanted:
            log.info("slash commands unchanged since the last sync; not syncing")
            return False
        await self.sync(application_id)
        return True

    async def sync(self, application_id: int | None, guild_id: int | None = None) -> int:
        """Sync now: globally, or to one guild (takes effect at once; for testing a change)."""
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self._tree.copy_global_to(guild=guild)
            synced = await self._tree.sync(guild=guild)
            log.info("synced %d slash command(s) to guild %s", len(synced), guild_id)
            return len(synced)
        synced = await self._tree.sync()
        await asyncio.to_thread(self._write, f"{application_id} {fingerprint(self._tree)}")
        log.info("synced %d global slash command(s)", len(synced))
        return len(synced)

    def _read(self) -> str:
        try:
            return self._state_file.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def _write(self, text: str) -> None:
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            self._state_file.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:  # syncing worked; next start will just sync again
            log.warning("could not record the command sync in %s: %s", self._state_file, exc)
