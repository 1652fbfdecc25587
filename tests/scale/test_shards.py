"""Discord shards split across processes: CODEBOT_DISCORD_SHARDS, the fake's IDENTIFY and routing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import pytest

from core.settings import ConfigError, DiscordShards, Settings, load_settings
from tests.discord.stack import running_bot
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.reliability.bot_process import bot_environ
from tests.scale.replicas import Proc, spawn
from tests.store.backends import postgres_dsn, postgres_schema

TOKEN = "fake-shard-token-0123456789"
READY = re.compile(r"discord: ready, (\d+) guilds")


@pytest.mark.parametrize(
    ("text", "ids", "count"),
    [("0,1/4", (0, 1), 4), ("3/4", (3,), 4), ("0-2,5/8", (0, 1, 2, 5), 8), (" 0 / 1 ", (0,), 1)],
)
def test_the_shards_setting_names_shard_ids_of_a_count(text: str, ids: tuple[int, ...], count: int) -> None:
    assert load_settings(None, CODEBOT_DISCORD_SHARDS=text).discord_shards == DiscordShards(ids, count)


def test_unset_shards_leave_sharding_to_discord_py() -> None:
    assert load_settings(None).discord_shards is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("4/4", "shard ids must be 0 to 3"),
        ("0,0/2", "names a shard twice"),
        ("1", "is not IDS/COUNT"),
        ("/4", "is not IDS/COUNT"),
        ("0/0", "shard count must be 1 to"),
        ("a/2", "'a' is not a shard number"),
        ("-1/2", "is not a shard number"),
        ("2-1/4", "shard ids must be 0 to 3"),
    ],
)
def test_a_bad_shards_setting_is_a_clear_config_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, CODEBOT_DISCORD_SHARDS=text)
    assert "CODEBOT_DISCORD_SHARDS" in str(err.value) and says in str(err.value)
    assert "0,1/4" in str(err.value)  # the message shows how to write it


# ---- the fake: IDENTIFY with a shard, and routing -------------------------------------------------


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


async def identify(fake: FakeDiscord, shard: object) -> aiohttp.ClientWebSocketResponse:
    """Open a gateway connection and IDENTIFY with this shard field, as discord.py sends it."""
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(fake.gateway_url)
    ws._codebot_session = http  # type: ignore[attr-defined]  # closed with the socket by close_ws
    hello = await ws.receive_json(timeout=10)
    assert hello["op"] == 10
    d = {"token": TOKEN, "intents": 513, "properties": {}, "shard": shard}
    await ws.send_json({"op": 2, "d": d})
    return ws


async def close_ws(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._codebot_session.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0/2", [0, "2"]])
async def test_the_fake_closes_a_bad_shard_with_4010_as_discord_does(
    discord_fake: FakeDiscord, shard: object
) -> None:
    ws = await identify(discord_fake, shard)
    try:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4010, msg
    finally:
        await close_ws(ws)
    assert discord_fake.refused_shards == [shard]


async def test_the_fake_sends_a_guilds_events_only_to_its_shard(discord_fake: FakeDiscord) -> None:
    g0, _c0 = discord_fake.add_guild(0, 2)
    g1, c1 = discord_fake.add_guild(1, 2)
    assert ((g0 >> 22) % 2, (g1 >> 22) % 2) == (0, 1)
    ws0 = await identify(discord_fake, [0, 2])
    ws1 = await identify(discord_fake, [1, 2])
    try:
        await discord_fake.wait_shards({0, 1})
        seen: dict[int, list[dict]] = {0: [], 1: []}
        for sid, ws in ((0, ws0), (1, ws1)):
            ready = await ws.receive_json(timeout=10)
            assert ready["t"] == "READY" and ready["d"]["shard"] == [sid, 2]
            seen[sid] += [g["id"] for g in ready["d"]["guilds"]]
        assert str(g0) in seen[0] and str(g1) in seen[1]
        assert str(g0) not in seen[1] and str(g1) not in seen[0]
        alice = discord_fake.user("alice")
        await discord_fake.send_message("hi", alice, channel_id=c1)
        while (frame := await ws1.receive_json(timeout=10))["t"] != "MESSAGE_CREATE":
            pass  # the shard's GUILD_CREATEs come first
        assert frame["d"]["guild_id"] == str(g1)
        with pytest.raises(TimeoutError):  # shard 0 gets nothing more than its own guilds
            while (frame := await ws0.receive_json(timeout=0.5))["t"] == "GUILD_CREATE":
                pass
    finally:
        await close_ws(ws0)
        await close_ws(ws1)


# ---- two bot processes, one shard each, on one database --------------------------------------------


@pytest.fixture
async def procs() -> AsyncIterator[list[Proc]]:
    """Every bot process the test starts; killed with their process groups whatever happens."""
    started: list[Proc] = []
    yield started
    for p in started:
        await p.kill()


def turn_threads(proc: Proc) -> set[str]:
    """The thread keys this process's JSON log lines name (the turns it ran)."""
    keys = set()
    for line in proc.log:
        with contextlib.suppress(ValueError):
            thread = json.loads(line).get("thread")
            if thread:
                keys.add(str(thread))
    return keys


def said(fake: FakeDiscord, thread_id: int) -> list[str]:
    """Everything the bot posted or edited in one thread."""
    calls = fake.calls_to("POST", rf"/channels/{thread_id}/messages") + fake.calls_to(
        "PATCH", rf"/channels/{thread_id}/messages/\d+"
    )
    return [str((c.json or {}).get("content", "")) for c in calls]


async def test_two_processes_with_a_shard_each_answer_each_guild_once_from_the_right_one(
    tmp_path: Path, discord_fake: FakeDiscord, procs: list[Proc]
) -> None:
    fake = discord_fake
    guilds = [fake.add_guild(0, 2), fake.add_guild(1, 2)]  # (guild, channel) on shard 0, on shard 1
    per_shard = [sum(1 for g in fake.guilds if (g >> 22) % 2 == sid) for sid in (0, 1)]
    async with FakeOpenAI() as llm, postgres_schema(postgres_dsn()) as dsn:
        try:
            for sid in (0, 1):  # one after the other: the first one migrates the fresh schema
                cwd = tmp_path / f"shard{sid}"
                cwd.mkdir()
                env = bot_environ(
                    cwd, "http://127.0.0.1:9/unused", llm.base_url, CODEBOT_DB=dsn, CODEBOT_LOG_FORMAT="json",
                    CODEBOT_DISCORD_SHARDS=f"{sid}/2", DISCORD_TOKEN=TOKEN, DISCORD_API_URL=fake.api_base,
                    DISCORD_GATEWAY_URL=fake.gateway_url,
                )  # fmt: skip
                argv = [sys.executable, "-m", "bot", "discord"]
                try:
                    procs.append(await spawn(argv, env, cwd, {"guilds": READY}, timeout_s=90))
                except ProcessLookupError as exc:
                    raise AssertionError(f"shard {sid} did not start:\n{exc}") from None
                assert procs[-1].ports["guilds"] == per_shard[sid]  # it sees its shard's guilds only
            assert sorted(fake.shard_identifies) == [(0, 2), (1, 2)]

            alice = fake.user("alice")
            for n, (_, channel) in enumerate(guilds):
                llm.enqueue_text(f"Answer number {n}.")
                mention = f"<@{fake.bot_user['id']}> question {n}"
                msg = await fake.send_message(mention, alice, channel_id=channel, mention_bot=True)
                thread = int(msg["id"])  # the bot opens a thread on the message; it has the message's id
                await fake.wait_until(lambda t=thread: finals(fake, t) >= 1, within_s=60)
                assert any(f"Answer number {n}." in s for s in said(fake, thread))
        finally:
            for p in procs:  # before the schema is dropped: a process still using it can deadlock DROP
                await p.kill()
    assert len(llm.agent_requests) == 2  # each question reached the model once
    assert len(fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 2
    for sid, (guild, _) in enumerate(guilds):
        ran = {key.split(":")[1] for key in turn_threads(procs[sid]) if key.startswith("discord:")}
        assert ran == {str(guild)}, (sid, ran)  # the shard's process ran its guild's turn, no other


async def test_one_process_running_both_shards_answers_in_every_guild_and_its_threads(
    tmp_path: Path, discord_fake: FakeDiscord
) -> None:
    fake = discord_fake
    guilds = [fake.add_guild(0, 2), fake.add_guild(1, 2)]
    env = {
        "CODEBOT_DB": str(tmp_path / "codebot.db"), "CODEBOT_DISCORD_SHARDS": "0,1/2", "DISCORD_TOKEN": TOKEN,
        "DISCORD_API_URL": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url,
    }  # fmt: skip
    settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]
    alice = fake.user("alice")
    async with (
        FakeOpenAI() as llm,
        core_stack(tmp_path, llm.base_url) as core,
        running_bot(core, settings) as (bot, _),
    ):
        assert isinstance(bot.client, discord.AutoShardedClient)
        assert sorted(bot.client.shards) == [0, 1] and sorted(fake.shard_identifies) == [(0, 2), (1, 2)]
        for n, (_, channel) in enumerate(guilds):
            llm.enqueue_text(f"First {n}.")
            mention = f"<@{fake.bot_user['id']}> q{n}"
            msg = await fake.send_message(mention, alice, channel_id=channel, mention_bot=True)
            thread = int(msg["id"])
            await fake.wait_until(lambda t=thread: finals(fake, t) >= 1, within_s=60)
            llm.enqueue_text(f"Second {n}.")
            await fake.send_message(f"and then {n}?", alice, channel_id=thread)  # a follow-up, no mention
            await fake.wait_until(lambda t=thread: finals(fake, t) >= 2, within_s=60)
            assert any(f"Second {n}." in s for s in said(fake, thread))
            assert f"First {n}." in json.dumps(llm.agent_requests[-1]["messages"])  # with its history
    assert not fake.refused, fake.refused


def finals(fake: FakeDiscord, thread_id: int) -> int:
    """How many turns in this thread ended: their question marked ✅/❌ (in the thread, or the message
    the thread was started from)."""
    marks = "(✅|❌)"
    here = fake.calls_to("PUT", rf"/channels/{thread_id}/messages/\d+/reactions/{marks}/@me")
    started = fake.calls_to("PUT", rf"/channels/\d+/messages/{thread_id}/reactions/{marks}/@me")
    return len(here) + len([c for c in started if c not in here])


async def test_codebot_discord_with_a_bad_shards_setting_stops_at_start_naming_it(tmp_path: Path) -> None:
    env = bot_environ(
        tmp_path, "http://127.0.0.1:9/unused", "http://127.0.0.1:9/v1",
        CODEBOT_DISCORD_SHARDS="2/2", DISCORD_TOKEN=TOKEN,
    )  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "discord", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode != 0
    assert "CODEBOT_DISCORD_SHARDS" in err.decode() and "shard ids must be 0 to 1" in err.decode()
