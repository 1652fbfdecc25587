"""The buttons need interactivity: without it Slack never sends their block_actions to the bot."""

from __future__ import annotations

import re

from tests.slack.test_manifest import MANIFEST


def test_manifest_turns_on_interactivity_for_the_buttons():
    text = MANIFEST.read_text()
    block = re.search(r"^  interactivity:\n((?:    [^\n]*\n)+)", text, re.MULTILINE)
    assert block and re.search(r"^    is_enabled: true$", block.group(1), re.MULTILINE)
