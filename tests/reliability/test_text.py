"""Text hygiene: surrogates, control characters, deceptive link labels and bot-looking lines."""

from __future__ import annotations

import pytest

from core.text import deceptive_link, duration, escape_controls, mimics_bot_line, scrub_surrogates


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain ascii", "plain ascii"),
        ("🚀 √2 平方根 Ответ", "🚀 √2 平方根 Ответ"),
        ("half \ud83d of a rocket", "half \ufffd of a rocket"),
        ("\udcff\udcfe", "\ufffd\ufffd"),
        ("", ""),
    ],
)
def test_scrub_surrogates(raw: str, clean: str):
    assert scrub_surrogates(raw) == clean
    scrub_surrogates(raw).encode("utf-8")  # always encodable afterwards


@pytest.mark.parametrize(
    ("ms", "shown"), [(0.0, "<1 ms"), (0.4, "<1 ms"), (1.0, "1 ms"), (340.2, "340 ms"), (2430.0, "2.4 s")]
)
def test_run_durations_read_naturally(ms: float, shown: str):
    assert duration(ms) == shown


@pytest.mark.parametrize(
    "line",
    [
        "🛡️ **Review: allowed** · risk low",
        ":white_check_mark: *Safety review: Allowed* · risk low",
        "**Step 2** · ✅ **Ran** in 3 ms",
        ":page_facing_up: *Code* · step 1",
        "💥 **Stopped**: hit the memory limit after 2.0 s",
        "❌ **Error** after 3 ms (exit 1)",
    ],
)
def test_lines_dressed_as_the_bots_own_are_recognised(line):
    assert mimics_bot_line(line)


@pytest.mark.parametrize(
    "line", ["Step 1: load the data", "Review: the code looks fine", "Failed attempts: 3", "It is 42."]
)
def test_ordinary_answer_lines_are_left_alone(line):
    assert not mimics_bot_line(line)


@pytest.mark.parametrize(
    ("label", "url", "deceptive"),
    [
        ("https://slack.com/verify", "https://evil.example", True),
        ("slack.com", "https://evil.example/slack.com", True),
        ("www.python.org", "https://docs.python.org", True),
        ("the docs", "https://evil.example", False),
        ("docs.python.org", "https://docs.python.org/3/", False),
        ("https://x.org/a", "https://x.org/a/", False),
    ],
)
def test_a_link_label_naming_another_address_is_deceptive(label, url, deceptive):
    assert deceptive_link(label, url) is deceptive


def test_controls_are_escaped_but_newlines_and_tabs_kept():
    text = "a\rb\x1b[2Kc\x1b]52;c;eA==\x07d\x9be\u202ef\n\tg"
    assert escape_controls(text) == "a\\rb\\x1b[2Kc\\x1b]52;c;eA==\\x07d\\x9be\\u202ef\n\tg"
