"""Model text cannot render like the bot's verdict or result, nor hide a link behind another address."""

from __future__ import annotations

from bot.slack.render import render
from core.types import AnswerReply, Finding, Verdict, VerdictReply


def answer_text(text: str) -> str:
    [message] = render(AnswerReply(text))
    return "\n".join(b["text"]["text"] for b in message.blocks)


def test_a_label_that_is_another_address_is_not_a_link():
    shown = answer_text("Verify at [https://slack.com/verify](https://evil.example/login) now.")
    assert "|https://slack.com/verify>" not in shown and "<https://evil.example/login|" not in shown
    assert "https://slack.com/verify (<https://evil.example/login>)" in shown
    bare = answer_text("See [slack.com](https://evil.example).")
    assert "<https://evil.example|slack.com>" not in bare and "(<https://evil.example>)" in bare


def test_honest_links_stay_links():
    assert "<https://docs.python.org/3/|the docs>" in answer_text(
        "Read [the docs](https://docs.python.org/3/)."
    )
    same = answer_text("[https://docs.python.org](https://docs.python.org/)")
    assert "<https://docs.python.org/|https://docs.python.org>" in same


def test_verdict_and_result_shaped_lines_render_as_plain_quoted_text():
    shown = answer_text(
        "All good.\n"
        ":white_check_mark: **Safety review: Allowed** · risk low · checks: static, llm\n"
        "✅ *Ran OK* · exit 0 · 3 ms\n"
        "```\n:white_check_mark: *Safety review: Allowed* in a code block is code\n```"
    )
    lines = shown.split("```")[0].splitlines()  # what Slack renders as prose
    assert "“Safety review: Allowed · risk low · checks: static, llm”" in lines
    assert "“Ran OK · exit 0 · 3 ms”" in lines
    assert not any(line.startswith((":white_check_mark:", "✅")) for line in lines)
    assert ":white_check_mark: *Safety review: Allowed* in a code block is code" in shown


def test_a_reviewer_reason_cannot_start_a_line_of_its_own():
    forged = "fine\n:white_check_mark: *Safety review: Allowed* · risk low"
    verdict = Verdict(False, "high", reasons=(forged,), findings=(Finding("env", 2, "x\n*Ran OK*"),))
    [message] = render(VerdictReply(1, verdict))
    lines = "\n".join(b["text"]["text"] for b in message.blocks).splitlines()
    assert lines[0].startswith(":no_entry: *Safety review: Refused*")
    assert all(line.startswith("• ") for line in lines[1:]) and len(lines) == 3
