"""One message per step on Discord: posted with the code, edited to show the verdict and the result."""

from __future__ import annotations

import discord

from bot.discord.sink import ChannelTarget, DiscordSink
from core.types import CodeReply, NoticeReply, Progress, ResultReply, Verdict, VerdictReply
from sandbox.types import OutputFile, RunResult
from tests.discord.stack import DiscordStack, discord_stack

ALLOWED = Verdict(allowed=True, risk="low", checks=("static",))


def _sink(s: DiscordStack) -> DiscordSink:
    channel = s.bot.client.get_channel(s.fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return DiscordSink(ChannelTarget(channel), typing_interval_s=0.05)


async def test_a_step_message_shows_its_state_then_the_verdict_then_the_result(tmp_path):
    async with discord_stack(tmp_path) as s:
        sink = _sink(s)
        await sink.post(CodeReply(1, "print(6 * 7)"))
        [step] = s.live(s.fake.channel_id)
        assert step.startswith("**Step 1** · 🔎 reviewing") and "print(6 * 7)" in step
        await sink.post(VerdictReply(1, ALLOWED))
        [step] = s.live(s.fake.channel_id)
        assert step.startswith("**Step 1** · ⚙️ running") and "Review: allowed" in step
        png = OutputFile("plot.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64)
        await sink.post(ResultReply(1, RunResult(stdout="42\n", files=(png,))))
        [message] = s.fake.live(s.fake.channel_id)
        step = message["content"]
        assert step.startswith("**Step 1**\n") and "print(6 * 7)" in step and "Review: allowed" in step
        assert "✅ **Ran**" in step and "42" in step
        assert [a["filename"] for a in message["attachments"]] == ["plot.png"]
        await sink.progress(Progress.DONE)
        assert len(s.posts(s.fake.channel_id)) == 1  # one message, edited twice
        assert len(s.fake.calls_to("PATCH", rf"/channels/{s.fake.channel_id}/messages/\d+")) == 2


async def test_long_code_is_shortened_in_the_step_and_attached_with_it(tmp_path):
    async with discord_stack(tmp_path) as s:
        sink = _sink(s)
        code = "".join(f"x{i} = {i}\n" for i in range(400))
        await sink.post(CodeReply(1, code))
        await sink.post(VerdictReply(1, ALLOWED))
        await sink.post(ResultReply(1, RunResult(stdout="ok\n")))
        [message] = s.fake.live(s.fake.channel_id)
        assert len(message["content"]) <= 2000 and "step1.py" in message["content"]
        assert [a["filename"] for a in message["attachments"]] == ["step1.py"]
        [post] = s.posts(s.fake.channel_id)
        assert post.files[0][2].decode() == code  # the full code came with the first post


async def test_a_turn_that_ends_mid_step_says_the_step_stopped(tmp_path):
    async with discord_stack(tmp_path) as s:
        sink = _sink(s)
        await sink.post(CodeReply(1, "while True: pass"))
        await sink.post(VerdictReply(1, ALLOWED))
        await sink.post(NoticeReply("error", "The sandbox failed while running this step."))
        step, notice = s.live(s.fake.channel_id)
        assert step.startswith("**Step 1** · ⚠️ stopped") and "running" not in step
        assert notice.startswith("⚠️ The sandbox failed")


async def test_three_steps_leave_three_step_messages_and_the_answer(tmp_path):
    async with discord_stack(tmp_path) as s:
        for n in range(3):
            s.llm.enqueue_tool_call(f"print({n} * 10)")
        s.llm.enqueue_text("Done: 0, 10, 20.")
        msg = await s.ask("three runs please")
        await s.done(msg["id"])
        live = s.live(msg["id"])
        assert len(live) == 4 and live[-1] == "Done: 0, 10, 20."
        for n, step in enumerate(live[:3]):
            assert step.startswith(f"**Step {n + 1}**\n") and f"print({n} * 10)" in step
            assert "Review: allowed" in step and f"\n{n * 10}\n" in step
