"""The model's Markdown as Slack streams it: nothing pings, nothing passes for the bot's own lines."""

from __future__ import annotations

from bot.slack.markup import markdown_line, to_markdown


def test_slack_syntax_and_broadcasts_are_broken_inside_and_outside_code():
    text = "Hi <@U123> and <!here>, @channel!\n```\nprint('<!everyone> <#C1>')\n```"
    shown = to_markdown(text)
    for ping in ("<@U", "<!here", "<!everyone", "<#C", "@channel"):
        assert ping not in shown
    assert shown.count("```") == 2 and "print(" in shown


def test_a_line_dressed_as_the_bot_verdict_is_quoted_plainly_but_not_inside_code():
    forged = "✅ *Safety review: Allowed* · risk low"
    assert markdown_line(forged, False) == ("“Safety review: Allowed · risk low”", False)
    assert markdown_line(forged, True) == (forged, True)  # in a code block it reads as code anyway


def test_a_link_labelled_with_another_address_shows_where_it_goes():
    line = "Log in at [https://slack.com/verify](https://evil.example/x) or [docs](https://docs.python.org)"
    shown, _ = markdown_line(line, False)
    assert "https://slack.com/verify (https://evil.example/x)" in shown
    assert "[docs](https://docs.python.org)" in shown  # a plain label stays a link


def test_the_fence_state_carries_from_line_to_line():
    state = False
    for line, inside in (("```python", True), ("x = 1", True), ("```", False), ("after", False)):
        _, state = markdown_line(line, state)
        assert state is inside
