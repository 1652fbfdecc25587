"""Rendering replies as Discord messages: limits, splitting, escaping, files (pure)."""

from __future__ import annotations

import re

import pytest

from bot.discord.render import (
    DISCORD_HELP_NOTE,
    MAX_CHARS,
    MAX_FILES,
    ZWSP,
    code_block,
    neutralize,
    render_command,
    render_reply,
    render_status,
    split_text,
)
from core.types import (
    AnswerReply,
    CodeReply,
    CommandResult,
    Finding,
    NoticeReply,
    Progress,
    ResultReply,
    Verdict,
    VerdictReply,
)
from sandbox.types import OutputFile, RunResult


def _pings(text: str) -> bool:
    """Would Discord's parser see a mention here (ignoring allowed_mentions)?"""
    return bool(re.search(r"@(everyone|here)|<@[!&]?\d+>", text))


@pytest.mark.parametrize(
    "text",
    ["@everyone look", "hi @here", "@EVERYONE", "<@123456>", "<@!123456>", "<@&987654>", "a@everyone"],
)
def test_neutralize_breaks_every_mention_form(text: str) -> None:
    out = neutralize(text)
    assert not _pings(out)
    assert out.replace(ZWSP, "") == text  # readers still see the same text


def test_code_block_cannot_be_closed_from_inside() -> None:
    block = code_block("x = 1\n```\n@everyone\n``````", "py")
    inner = block[len("```py\n") : -len("\n```")]
    assert "```" not in inner
    assert block.startswith("```py\n") and block.endswith("\n```")
    assert not _pings(block)


def test_code_reply_fits_or_is_attached_in_full() -> None:
    short = render_reply(CodeReply(1, "print(1)"))
    assert short[0].content == "**Step 1** · code\n```py\nprint(1)\n```" and not short[0].files
    code = "\n".join(f"value_{i} = {i} * 2" for i in range(400))
    [msg] = render_reply(CodeReply(2, code))
    assert len(msg.content) <= MAX_CHARS
    assert msg.content.count("```") == 2  # still a closed block
    assert [(f.name, f.data) for f in msg.files] == [("step2.py", code.encode())]


def test_verdicts_show_decision_risk_and_reasons() -> None:
    allowed = render_reply(VerdictReply(1, Verdict(True, "low", checks=("static", "llm"))))[0].content
    assert "allowed" in allowed and "risk low" in allowed and "static, llm" in allowed
    refused = Verdict(
        False,
        "high",
        reasons=("reads @everyone's secrets",),
        findings=(Finding("env", 3, "reads os.environ"),),
    )
    text = render_reply(VerdictReply(1, refused))[0].content
    assert "refused" in text and "risk high" in text
    assert "line 3: reads os.environ" in text and not _pings(text)


def test_result_shows_output_result_and_error() -> None:
    ok = render_reply(
        ResultReply(1, RunResult(stdout="1.414\n", result="1.4142135623730951", duration_ms=12))
    )
    assert "Ran" in ok[0].content and "1.414" in ok[0].content and "1.4142135623730951" in ok[0].content
    err = render_reply(ResultReply(1, RunResult(error="Traceback...\nZeroDivisionError: x", exit_code=1)))
    assert "Error" in err[0].content and "ZeroDivisionError" in err[0].content
    killed = render_reply(ResultReply(1, RunResult(timed_out=True, killed_reason="timeout", exit_code=137)))
    assert "Timed out" in killed[0].content
    mem = render_reply(ResultReply(1, RunResult(killed_reason="memory", exit_code=137)))
    assert "memory limit" in mem[0].content


def test_long_output_is_truncated_in_the_message_and_attached_in_full() -> None:
    stdout = "".join(f"line {i}\n" for i in range(2000))
    error = "Traceback (most recent call last):\n" + "  frame\n" * 500 + "ValueError: the real cause\n"
    [msg] = render_reply(ResultReply(3, RunResult(stdout=stdout, error=error, exit_code=1)))
    assert len(msg.content) <= MAX_CHARS
    assert "line 0" in msg.content  # output keeps its head
    assert "ValueError: the real cause" in msg.content  # a traceback keeps its tail
    assert msg.content.count("```") % 2 == 0
    full = msg.files[0]
    assert full.name == "output-step3.txt"
    assert stdout.strip() in full.data.decode() and "ValueError: the real cause" in full.data.decode()


def test_files_are_packed_ten_per_message_within_the_upload_limit() -> None:
    files = (
        *tuple(OutputFile(f"f{i}.png", b"x" * 100) for i in range(23)),
        OutputFile("big.bin", b"x" * 5000),
    )
    msgs = render_reply(ResultReply(1, RunResult(stdout="ok", files=files)), upload_limit=1000)
    sent = [f.name for m in msgs for f in m.files]
    assert sent == [f"f{i}.png" for i in range(23)]
    assert all(len(m.files) <= MAX_FILES and sum(len(f.data) for f in m.files) <= 1000 for m in msgs)
    assert "big.bin" in msgs[0].content and "upload limit" in msgs[0].content


def test_long_answers_split_at_lines_and_keep_code_fences_balanced() -> None:
    body = "\n".join(f"print({i})" for i in range(300))
    text = "Here is the code:\n```py\n" + body + "\n```\nDone @here."
    msgs = render_reply(AnswerReply(text))
    assert len(msgs) > 1
    for m in msgs:
        assert len(m.content) <= MAX_CHARS
        assert m.content.count("```") % 2 == 0
        assert not _pings(m.content)
    joined = "\n".join(m.content for m in msgs)
    assert all(f"print({i})" in joined for i in range(300))


def test_huge_answer_is_capped_and_attached() -> None:
    text = "word " * 5000
    msgs = render_reply(AnswerReply(text))
    assert len(msgs) == 4
    assert msgs[-1].files[0].name == "answer.md" and msgs[-1].files[0].data == text.encode()


def test_split_text_hard_wraps_a_single_long_line() -> None:
    chunks = split_text("x" * 4500, 2000)
    assert [len(c) for c in chunks] == [1988, 1988, 524]


def test_notices_status_and_commands() -> None:
    notice = render_reply(NoticeReply("limit", "You used your 30 runs @everyone"))[0].content
    assert notice.startswith("⛔") and not _pings(notice)
    assert render_status(Progress.RUNNING) == "⚙️ Running the code…"
    assert render_status(Progress.QUEUED, "position 2") == "⏳ Queued · position 2"
    text = render_command(CommandResult("ping @everyone"), "help")
    assert not _pings(text) and text.endswith(DISCORD_HELP_NOTE)
