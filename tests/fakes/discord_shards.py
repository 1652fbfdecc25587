"""Discord's sharding for the fake gateway: IDENTIFY with a shard field, guilds routed to their shard.

Discord refuses a bad shard with close code 4010 and sends a guild's events only to shard
(guild_id >> 22) % shard_count (DMs to shard 0); FakeDiscord does the same through this mixin.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class ShardedGateway:
    """FakeDiscord's shard state and routing; `self` is the FakeDiscord (new_id, dispatch, _guild)."""

    guild_id: int
    channel_id: int
    threads: dict[int, dict[str, Any]]
    identifies: int
    bot_user: dict[str, Any]
    app_id: int
    _ready: asyncio.Event

    def _init_shards(self) -> None:
        # Sharding: guild -> its text channel (one guild unless a test adds more), the shard count the
        # first sharded IDENTIFY named, and each shard's connection. Discord sends a guild's events to
        # shard (guild_id >> 22) % count only, and DMs to shard 0.
        self.guilds: dict[int, int] = {self.guild_id: self.channel_id}
        self.shard_count: int | None = None
        self.shard_identifies: list[tuple[int, int]] = []
        self.refused_shards: list[Any] = []  # IDENTIFY shard fields closed with 4010 Invalid shard
        self._shard_ws: dict[int, web.WebSocketResponse] = {}
        self._shard_ready: dict[int, asyncio.Event] = {}
        self._shard_seq: dict[int, int] = {}

    def add_guild(self, shard: int, count: int) -> tuple[int, int]:
        """Another guild, with an id Discord routes to `shard` of `count`; returns (guild, channel)."""
        base = self.new_id()
        high = base >> 22
        high += (shard - high) % count
        gid = (high << 22) | (base & ((1 << 22) - 1))
        self.guilds[gid] = self.new_id()
        return gid, self.guilds[gid]

    def guild_of_channel(self, cid: int) -> int | None:
        """The guild a text channel or thread belongs to; None for a DM channel."""
        for gid, channel in self.guilds.items():
            if channel == cid:
                return gid
        thread = self.threads.get(cid)
        return int(thread["guild_id"]) if thread is not None else None

    def shard_of(self, guild_id: int | None) -> int:
        """Discord's routing: (guild_id >> 22) % shard_count; DMs (no guild) go to shard 0."""
        if guild_id is None or not self.shard_count:
            return 0
        return (guild_id >> 22) % self.shard_count

    async def wait_shards(self, ids: set[int], within_s: float = 10.0) -> None:
        """Wait until each of these shards has identified (READY sent)."""
        async with asyncio.timeout(within_s):
            for sid in ids:
                await self._shard_ready.setdefault(sid, asyncio.Event()).wait()

    def _bad_shard(self, shard: Any) -> bool:
        """What Discord closes with 4010 Invalid shard: not [id, count], id outside the count."""
        if not (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)):
            return True
        sid, count = shard
        if count < 1 or not 0 <= sid < count:
            return True
        # One count for all of a bot's sessions: the fake routes guilds by it.
        return self.shard_count is not None and count != self.shard_count

    async def _dispatch_sharded(self, event: str, data: dict[str, Any], shard: int | None) -> None:
        if shard is None:
            gid = data.get("id") if event == "GUILD_CREATE" else data.get("guild_id")
            shard = self.shard_of(int(gid) if gid is not None else None)
        async with asyncio.timeout(5):
            await self._shard_ready.setdefault(shard, asyncio.Event()).wait()
        seq = self._shard_seq[shard] = self._shard_seq.get(shard, 0) + 1
        await self._shard_ws[shard].send_json({"op": 0, "t": event, "s": seq, "d": data})

    async def _identified_shard(self, ws: web.WebSocketResponse, sid: int, count: int) -> None:
        self.identifies += 1
        self.shard_count = count
        self.shard_identifies.append((sid, count))
        self._shard_ws[sid] = ws
        mine = [gid for gid in self.guilds if self.shard_of(gid) == sid]
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(gid), "unavailable": True} for gid in mine],
            "session_id": f"fake-session-{sid}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
            "shard": [sid, count],
        }
        self._ready.set()
        self._shard_ready.setdefault(sid, asyncio.Event()).set()
        await self.dispatch("READY", ready, shard=sid)
        for gid in mine:
            await self.dispatch("GUILD_CREATE", self._guild(gid), shard=sid)
