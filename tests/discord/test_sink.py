"""The sink's platform behaviour: coalesced status edits, typing, failed uploads, refusals, no thread."""

from __future__ import annotations

import asyncio

import discord

from bot.discord.sink import ChannelTarget, DiscordSink
from core.types import NoticeReply, Progress, ResultReply
from sandbox.types import OutputFile, RunResult
from tests.discord.stack import DiscordStack, discord_stack


def _text_channel(s: DiscordStack) -> discord.TextChannel:
    channel = s.bot.client.get_channel(s.fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_progress_shows_typing_not_a_status_message_and_typing_stops_at_the_end(tmp_path):
    async with discord_stack(tmp_path) as s:
        channel = _text_channel(s)
        sink = DiscordSink(ChannelTarget(channel), status_interval_s=0.2, typing_interval_s=0.1)
        for i in range(40):  # a chatty turn: 40 updates within ~0.4 s
            await sink.progress(Progress.RUNNING, f"step {i}")
            await asyncio.sleep(0.01)
        await sink.progress(Progress.DONE)
        typing_at_done = len(s.fake.calls_to("POST", rf"/channels/{s.fake.channel_id}/typing"))
        await asyncio.sleep(0.4)
        assert s.fake.calls_to("POST", rf"/channels/{s.fake.channel_id}/messages") == []  # no "Done" left
        assert typing_at_done >= 1
        assert len(s.fake.calls_to("POST", rf"/channels/{s.fake.channel_id}/typing")) == typing_at_done


async def test_a_queue_position_is_a_status_message_coalesced_and_deleted_when_the_turn_starts(tmp_path):
    async with discord_stack(tmp_path) as s:
        channel = _text_channel(s)
        sink = DiscordSink(ChannelTarget(channel), status_interval_s=0.2, typing_interval_s=0.1)
        for i in range(20, 0, -1):  # the queue moves quickly
            await sink.progress(Progress.QUEUED, f"position {i}")
        [status] = s.fake.calls_to("POST", rf"/channels/{s.fake.channel_id}/messages")
        assert status.json["content"] == "⏳ Queued · position 20"
        await s.fake.wait_for("PATCH", rf"/channels/{s.fake.channel_id}/messages/\d+")
        assert len(s.fake.calls_to("PATCH", rf"/channels/{s.fake.channel_id}/messages/\d+")) <= 5  # not 19
        await sink.progress(Progress.THINKING)
        assert len(s.fake.calls_to("DELETE", rf"/channels/{s.fake.channel_id}/messages/\d+")) == 1
        assert s.fake.live(s.fake.channel_id) == []
        await sink.progress(Progress.DONE)


async def test_a_failed_upload_still_posts_the_text(tmp_path):
    async with discord_stack(tmp_path) as s:
        channel = _text_channel(s)
        sink = DiscordSink(ChannelTarget(channel))
        s.fake.fail_next("POST", r"/channels/\d+/messages", status=413)
        png = OutputFile("plot.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100)
        await sink.post(ResultReply(1, RunResult(stdout="plotted", files=(png,))))
        first, second = s.fake.calls_to("POST", rf"/channels/{s.fake.channel_id}/messages")
        assert first.files and not second.files
        assert "plotted" in second.json["content"] and "could not attach plot.png" in second.json["content"]


async def test_without_thread_permission_the_answer_comes_in_the_channel(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.fake.fail_next("POST", r"/channels/\d+/messages/\d+/threads", status=403)
        s.llm.enqueue_text("Answered anyway.")
        await s.ask("hello")
        await s.done(s.fake.channel_id)
        texts = s.contents(s.fake.channel_id)
        assert "Create Public Threads" in texts[0]
        assert texts[-1] == "Answered anyway."


async def test_refusals_before_any_work_reply_in_the_channel_without_a_thread(tmp_path):
    async with discord_stack(tmp_path, CODEBOT_LIMIT_USER_RUNS_PER_HOUR="1") as s:
        empty = await s.ask("")
        await s.quiet()
        s.llm.enqueue_text("First answer.")
        first = await s.ask("first question")
        await s.done(first["id"])
        second = await s.ask("second question")
        await s.quiet()
        replies = s.posts(s.fake.channel_id)
        assert [str(r.json["message_reference"]["message_id"]) for r in replies] == [
            empty["id"],
            second["id"],
        ]
        assert "Ask me something" in replies[0].json["content"]
        assert "1 run for this hour" in replies[1].json["content"] and replies[1].json["content"].startswith(
            "⛔"
        )
        assert all(r.json["allowed_mentions"] == {"parse": [], "replied_user": False} for r in replies)
        threads = s.fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")
        assert [t.path.split("/")[4] for t in threads] == [first["id"]]


async def test_an_abandoned_turn_ends_the_status_and_says_so(tmp_path):
    async with discord_stack(tmp_path) as s:
        channel = _text_channel(s)
        sink = DiscordSink(ChannelTarget(channel), typing_interval_s=0.05)
        await sink.progress(Progress.THINKING)
        await sink.post(NoticeReply("abandoned", "The bot was restarting; please ask again."))
        [notice] = s.live(s.fake.channel_id)  # no status message is left beside it
        assert notice.startswith("⚠️ The bot was restarting")
