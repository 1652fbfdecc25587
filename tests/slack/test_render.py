"""Reply -> Slack message rendering: escaping, neutralising, fences, splitting, attachments (pure)."""

from __future__ import annotations

import json
import re

from bot.slack.markup import ZWSP
from bot.slack.render import RenderLimits, render, render_command_text, render_progress
from core.types import (
    AnswerReply,
    CodeReply,
    Finding,
    NoticeReply,
    Progress,
    ResultReply,
    Verdict,
    VerdictReply,
)
from sandbox.types import OutputFile, RunResult

PINGS = ["<!channel>", "<!here>", "<!everyone>", "<@U0123>", "<!subteam^S1|@devs>", "<#C1>"]


def texts(messages) -> list[str]:
    """Every string Slack will parse in the rendered messages: fallbacks and block texts."""
    out = []
    for m in messages:
        out.append(m.text)
        for b in m.blocks:
            out.extend([b["text"]["text"]] if "text" in b else [e["text"] for e in b["elements"]])
    return out


def assert_slack_limits(messages):
    limits = RenderLimits()
    for m in messages:
        assert len(m.blocks) <= limits.max_blocks
        for t in texts([m]):
            assert 0 < len(t) <= limits.section_chars
        assert len(json.dumps(m.blocks)) < 20_000


def assert_no_pings(messages):
    for t in texts(messages):
        assert "<!" not in t and "<@" not in t and "<#" not in t, t
        assert not re.search(r"(?<!\u200b)@(here|channel|everyone)\b", t.replace("&lt;!", "")), t


def fence_bodies(text: str) -> list[str]:
    assert text.count("```") % 2 == 0, text
    return text.split("```")[1::2]


def test_code_is_fenced_escaped_and_cannot_break_out():
    code = 'print("<!channel> & <@U0123>")\ns = """```\nnot code```"""\n'
    [msg] = render(CodeReply(1, code))
    assert_no_pings([msg])
    body = "".join(b["text"]["text"] for b in msg.blocks if b["type"] == "section")
    assert body.count("```") == 2  # only our own fence: the ``` inside the code was defused
    inner = fence_bodies(body)[0]
    assert "&lt;!channel&gt; &amp; &lt;@U0123&gt;" in inner
    assert (
        inner.replace(ZWSP, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()
        == code.strip()
    )
    assert msg.attachments == ()


def test_long_code_is_split_into_sections_truncated_and_attached_in_full():
    code = "".join(f"x{i} = {i} * 2  # & <tag>\n" for i in range(400))  # ~11 000 raw chars
    [msg] = render(CodeReply(2, code))
    assert_slack_limits([msg])
    sections = [b["text"]["text"] for b in msg.blocks if b["type"] == "section"]
    assert len(sections) >= 2 and all(s.startswith("```\n") and s.endswith("\n```") for s in sections)
    assert sum(len(s) for s in sections) <= RenderLimits().message_chars
    assert [a.filename for a in msg.attachments] == ["code_step2.py"]
    assert msg.attachments[0].content == code.encode()
    assert "full code is attached as `code_step2.py`" in texts([msg])[-1]


def test_one_enormous_line_is_cut_without_breaking_an_entity():
    [msg] = render(CodeReply(1, "&" * 10_000))
    assert_slack_limits([msg])
    for t in texts([msg]):
        assert not re.search(r"&(?!amp;|lt;|gt;)", t.replace("&amp;", "")), "a cut entity"


def test_result_shows_status_stdout_result_error_and_lists_files():
    result = RunResult(
        stdout="hi <!here>\n",
        result="1.4142135623730951",
        error="Traceback...\nZeroDivisionError",
        exit_code=1,
        duration_ms=123.4,
        files=(OutputFile("plot.png", b"\x89PNG..."),),
    )
    [msg] = render(ResultReply(1, result))
    all_text = "\n".join(texts([msg]))
    assert_no_pings([msg])
    assert ":x: *Failed* · exit 1 · 123 ms" in all_text
    for part in (
        "*stdout*",
        "hi &lt;!here&gt;",
        "*result*",
        "1.4142135623730951",
        "*error*",
        "ZeroDivisionError",
    ):
        assert part in all_text
    assert "plot.png" in all_text and [a.filename for a in msg.attachments] == ["plot.png"]
    assert msg.text.startswith("Result (step 1): Failed")


def test_timeouts_kills_and_truncation_are_spelled_out():
    [timed] = render(
        ResultReply(1, RunResult(timed_out=True, killed_reason="timeout", exit_code=137, duration_ms=10000))
    )
    assert "Timed out" in texts([timed])[1]
    killed = RunResult(killed_reason="memory", exit_code=137, truncated=True, duration_ms=50)
    line = texts(render(ResultReply(1, killed)))[1]
    assert "Killed* (memory limit)" in line and "output truncated" in line


def test_long_output_is_truncated_in_the_message_and_attached_in_full():
    stdout = "".join(f"line {i}\n" for i in range(3000))
    [msg] = render(ResultReply(3, RunResult(stdout=stdout, result="'ok'")))
    assert_slack_limits([msg])
    assert "'ok'" in "\n".join(texts([msg]))  # the result still shows after a long stdout
    [att] = msg.attachments
    assert att.filename == "output_step3.txt" and stdout in att.content.decode()


def test_verdict_refused_lists_reasons_and_findings():
    verdict = Verdict(
        False,
        "high",
        reasons=("reads <!everyone> secrets",),
        findings=(Finding("env", 3, "reads os.environ"),),
        checks=("static", "llm"),
    )
    [msg] = render(VerdictReply(1, verdict))
    assert_no_pings([msg])
    joined = "\n".join(texts([msg]))
    assert ":no_entry: *Safety review: Refused* · risk high · checks: static, llm" in joined
    assert "line 3: reads os.environ" in joined and "&lt;!everyone&gt;" in joined


def test_answer_markdown_becomes_safe_mrkdwn():
    md = "# Result\n**sqrt(2)** is about 1.414 @everyone <!here>\n- see [docs](https://x.y/a?b=1&c=2)\n```python\nprint(1)\n```"
    [msg] = render(AnswerReply(md))
    assert_no_pings([msg])
    text = msg.blocks[0]["text"]["text"]
    assert text.startswith("*Result*\n*sqrt(2)* is about 1.414 @\u200beveryone &lt;!here&gt;")
    assert "• see <https://x.y/a?b=1&amp;c=2|docs>" in text
    assert "```\nprint(1)\n```" in text


def test_long_answer_splits_over_messages_reopening_fences_then_attaches():
    md = "Intro\n```\n" + "".join(f"row {i}\n" for i in range(1500)) + "```\nEnd."
    messages = render(AnswerReply(md))
    assert_slack_limits(messages)
    assert 1 < len(messages) <= RenderLimits().answer_messages
    for m in messages:
        for b in m.blocks:
            if b["type"] == "section":
                fence_bodies(b["text"]["text"])  # every section opens and closes its fences
    assert messages[-1].attachments[0].filename == "answer.md"
    short = render(AnswerReply("x" * 5000))
    assert len(short) == 2 and all(m.attachments == () for m in short)


def test_notices_progress_and_command_text():
    [msg] = render(NoticeReply("limit", "Limit reached <!channel>; resets at 14:00"))
    assert msg.blocks[0]["text"]["text"].startswith(":no_entry_sign: Limit reached &lt;!channel&gt;")
    status = render_progress(Progress.RUNNING, "step 2 of 3")
    assert status.text == "Running the code in the sandbox… · step 2 of 3"
    assert render_progress(Progress.DONE).blocks[0]["elements"][0]["text"] == ":white_check_mark: Done"
    assert render_command_text("*timeout_s* = `10` <@U1>") == "*timeout_s* = `10` &lt;@U1&gt;"
