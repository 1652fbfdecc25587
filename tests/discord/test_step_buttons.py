"""The buttons on Discord's one-message-per-step layout: Stop while a step runs, Re-run after its result.

Real discord.py against the fake (which checks component limits); the sink is driven directly so each
stage of a step can be looked at as the channel shows it.
"""

from __future__ import annotations

import discord

from bot.discord.components import StepButtons
from bot.discord.sink import ChannelTarget, DiscordSink
from core.control import step_ref
from core.types import AnswerReply, CodeReply, Progress, ResultReply, ThreadKey, Verdict, VerdictReply
from sandbox.types import RunResult
from tests.discord.stack import DiscordStack, discord_stack

ALLOWED = Verdict(allowed=True, risk="low", checks=("static",))
CODE = "print(6 * 7)"


def _sink(s: DiscordStack, turn_ref: str = "4242") -> DiscordSink:
    channel = s.bot.client.get_channel(s.fake.channel_id)
    assert isinstance(channel, discord.TextChannel) and s.bot.buttons is not None
    key = ThreadKey("discord", str(s.fake.guild_id), str(channel.id), str(channel.id))
    buttons = StepButtons(s.bot.buttons, key, turn_ref)
    return DiscordSink(ChannelTarget(channel), typing_interval_s=0.05, draft_interval_s=0, buttons=buttons)


async def test_stop_rides_on_the_running_step_and_rerun_replaces_it_with_the_result(tmp_path):
    async with discord_stack(tmp_path) as s:
        sink = _sink(s)
        await sink.post(CodeReply(1, CODE))
        [step] = s.fake.live(s.fake.channel_id)
        assert s.fake.buttons(step["id"]) == ["cb:stop:4242"]  # reviewing: stoppable from here
        await sink.post(VerdictReply(1, ALLOWED))
        assert s.fake.buttons(step["id"]) == ["cb:stop:4242"]  # running
        await sink.post(ResultReply(1, RunResult(stdout="42\n")))
        assert s.fake.buttons(step["id"]) == [f"cb:rerun:{step_ref(1, CODE)}"]  # Stop gone with the result
        await sink.post(AnswerReply("It is 42."))
        await sink.progress(Progress.DONE)
        step_message, answer = s.fake.live(s.fake.channel_id)  # the step and the answer, no more
        assert answer["content"] == "It is 42." and not s.fake.buttons(answer["id"])
        assert s.fake.buttons(step_message["id"]) == [f"cb:rerun:{step_ref(1, CODE)}"]
        assert len(s.fake.calls_to("PATCH", rf"/channels/{s.fake.channel_id}/messages/{step['id']}")) == 2
        assert s.fake.refused == []
        await sink.aclose()


async def test_a_turn_that_ends_while_its_step_runs_takes_stop_away(tmp_path):
    async with discord_stack(tmp_path) as s:
        sink = _sink(s)
        await sink.post(CodeReply(1, CODE))
        await sink.post(VerdictReply(1, ALLOWED))
        [step] = s.fake.live(s.fake.channel_id)
        assert s.fake.buttons(step["id"]) == ["cb:stop:4242"]
        await sink.progress(Progress.FAILED)
        [step] = s.fake.live(s.fake.channel_id)
        assert "stopped" in step["content"].lower() and s.fake.buttons(step["id"]) == []
        await sink.aclose()


async def test_a_rerun_step_offers_rerun_but_no_stop(tmp_path):
    async with discord_stack(tmp_path) as s:
        sink = _sink(s, turn_ref="")
        await sink.post(CodeReply(1, CODE))
        [step] = s.fake.live(s.fake.channel_id)
        assert s.fake.buttons(step["id"]) == []
        await sink.post(VerdictReply(1, ALLOWED))
        await sink.post(ResultReply(1, RunResult(stdout="42\n")))
        assert s.fake.buttons(step["id"]) == [f"cb:rerun:{step_ref(1, CODE)}"]
        await sink.aclose()
