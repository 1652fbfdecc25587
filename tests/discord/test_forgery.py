"""Nothing the code prints or the model writes can pass for the bot's own lines, or break a message."""

from __future__ import annotations

import discord
import pytest

from bot.discord.render import MAX_CHARS, render_reply
from core.types import AnswerReply, CodeReply, ResultReply, Verdict, VerdictReply
from sandbox.types import OutputFile, RunResult
from tests.discord.stack import discord_stack
from tests.fakes.discord_limits import message_problems

FORGED = "🛡️ **Review: allowed** · risk low\n[https://discord.com/verify](https://evil.example)"


def outside_code(content: str) -> str:
    """The parts of a message Discord renders as markdown (between code blocks, not inside them)."""
    return "".join(content.split("```")[::2])


@pytest.mark.parametrize(
    "result",
    [
        RunResult(stdout="```\n" * 900 + FORGED),
        RunResult(error="Traceback\n" + "``` @everyone\n" * 900 + FORGED, exit_code=1),
        RunResult(stdout="x" * 5000, stderr="@here " * 2000 + FORGED, exit_code=3),
    ],
)
def test_printed_text_stays_inside_the_code_block_however_long(result):
    for message in render_reply(ResultReply(1, result)):
        assert len(message.content) <= MAX_CHARS
        assert message.content.count("```") % 2 == 0
        assert "Review: allowed" not in outside_code(message.content)
        assert "evil.example" not in outside_code(message.content)


def test_code_that_grows_when_escaped_still_fits():
    [message] = render_reply(CodeReply(1, "```@everyone\n" * 600))
    assert len(message.content) <= MAX_CHARS and message.content.count("```") % 2 == 0


def test_model_text_cannot_look_like_the_verdict_or_mask_a_link():
    text = (
        "Here you go.\n"
        "🛡️ **Review: allowed** · risk low · checks: static, llm\n"
        "**Step 2** · ✅ **Ran** in 3 ms\n"
        "Log in at [https://discord.com/verify](https://evil.example) or [the docs](https://docs.python.org)."
        "\n```\n🛡️ **Review: allowed** stays as written in code\n```"
    )
    [message] = render_reply(AnswerReply(text))
    shown = outside_code(message.content)
    assert "**Review: allowed**" not in shown and "🛡️" not in shown and "**Step 2**" not in shown
    assert "“Review: allowed · risk low · checks: static, llm”" in shown
    assert "](https://evil.example)" not in shown and "(<https://evil.example>)" in shown
    assert "[the docs](https://docs.python.org)" in shown  # an honest masked link is kept
    assert "🛡️ **Review: allowed** stays as written in code" in message.content


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"content": "x" * 2001}, 50035),
        ({"embeds": [{"title": "t"}] * 11}, 50035),
        ({"embeds": [{"title": "t" * 257}]}, 50035),
        ({"embeds": [{"description": "d" * 4097}]}, 50035),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2500}]}, 50035),
        ({"content": "hi", "allowed_mentions": {"parse": ["nobody"]}}, 50035),
        ({"content": 42}, 50035),
        ({"content": ""}, 50006),
    ],
)
async def test_the_fake_refuses_what_discord_refuses(tmp_path, payload, code):
    async with discord_stack(tmp_path) as s:
        route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=s.fake.channel_id)
        with pytest.raises(discord.HTTPException) as refused:
            await s.bot.client.http.request(route, json=payload)  # past discord.py's own checks
        assert refused.value.status == 400 and refused.value.code == code
        assert len(s.fake.refused) == 1
        s.fake.refused.clear()  # refused on purpose; the stack fails any other test that sees one


async def test_a_forged_heading_printed_by_the_code_stays_in_the_block_end_to_end(tmp_path):
    program = "print('```\\n' * 900)\nprint(" + repr(FORGED) + ")\nraise SystemExit(" + repr(FORGED) + ")"
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call(program)
        s.llm.enqueue_text("Done.")
        msg = await s.ask("print a lot")
        await s.done(msg["id"])
        contents = s.live(msg["id"]) + s.contents(msg["id"])
    result = next(c for c in s.live(msg["id"]) if c.startswith("**Step 1**") and "\n❌ **" in c)
    assert "Review: allowed" in result  # shown as program output, and once as the real verdict line
    for content in contents:
        assert content.count("```") % 2 == 0
        verdicts = [line for line in outside_code(content).splitlines() if "Review: allowed" in line]
        assert all(line.startswith("🛡️ **Review: allowed**") for line in verdicts) and len(verdicts) <= 1


def test_a_reviewer_reason_cannot_start_a_line_of_its_own():
    forged = "fine\n🛡️ **Review: allowed** · risk low"
    [message] = render_reply(VerdictReply(1, Verdict(False, "high", reasons=(forged,))))
    lines = message.content.splitlines()
    assert lines[0].startswith("🚫 **Review: refused**") and lines[1:] == [f"- {' '.join(forged.split())}"]


def test_thousands_of_files_and_huge_output_fit_in_messages_discord_accepts():
    name = "n" * 200
    result = RunResult(
        stdout="@everyone " * 9000,
        stderr="```" * 9000,
        error="x" * 50_000,
        exit_code=1,
        files=tuple(OutputFile(f"{i}{name}.png", b"x" * 10) for i in range(10)),
        skipped_files=tuple(f"{i}{name}" for i in range(3000)),
    )
    messages = render_reply(ResultReply(1, result))
    for m in messages:
        assert len(m.content) <= MAX_CHARS and m.content.count("```") % 2 == 0
        assert not message_problems({"content": m.content})
    assert "2,990 more" in messages[0].content
