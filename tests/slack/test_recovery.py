"""After a crash, the Slack bot tells each interrupted thread at start-up, in that thread."""

from __future__ import annotations

from core.store.sqlite import SQLiteStore
from core.types import ThreadKey
from tests.slack.payloads import TEAM
from tests.slack.stack import slack_stack


async def test_a_turn_interrupted_by_a_crash_is_reported_in_its_thread_at_start(tmp_path, slack):
    store = SQLiteStore(tmp_path / "codebot.db")  # what a killed process left behind
    await store.open()
    key = ThreadKey("slack", TEAM, "C7", "1700000000.000100")
    await store.start_turn(key, "Ev-crashed", "U123", "plot the sales figures", 1_700_000_000.0)
    await store.close()

    async with slack_stack(tmp_path, slack) as s:
        posts = await s.wait_posts("C7", "1700000000.000100", 1)
        assert await s.core.has_conversation(key) is False
    text = posts[0].params["text"]
    assert "restarted while answering" in text and "plot the sales figures" in text

    store = SQLiteStore(tmp_path / "codebot.db")
    await store.open()
    try:
        assert await store.unfinished_turns() == []  # reported once, not at every start
    finally:
        await store.close()
