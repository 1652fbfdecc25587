"""Streamed answers on Discord: one draft message, edited at most once per interval, then the answer."""

from __future__ import annotations

import time

from tests.discord.stack import discord_stack

ANSWER = "\n".join(f"- point {i}: " + "detail " * 6 for i in range(12))


async def test_a_streamed_answer_is_one_message_edited_no_more_than_once_a_second(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.stream_delay_s = 0.02  # ~80 pieces: the answer takes a few seconds to arrive
        s.llm.enqueue_text(ANSWER)
        started = time.monotonic()
        msg = await s.ask("twelve points please")
        await s.done(msg["id"])
        took = time.monotonic() - started
        [answer] = s.fake.live(msg["id"])
        assert answer["content"] == ANSWER.strip()
        [post] = s.posts(msg["id"])
        assert post.json["content"].endswith(" …")  # the first draft, shown while it was written
        edits = s.fake.calls_to("PATCH", rf"/channels/{msg['id']}/messages/{answer['id']}")
        assert 1 <= len(edits) <= took / 1.0 + 2  # throttled to one edit a second (plus the final one)
        assert all(e.json["allowed_mentions"] == {"parse": []} for e in edits)


async def test_a_failure_mid_answer_leaves_the_draft_saying_it_stopped(tmp_path):
    async with discord_stack(tmp_path, CODEBOT_LLM_RETRIES="0") as s:
        s.llm.stream_delay_s = 0.02
        s.llm.enqueue_stream_cut(ANSWER, after_pieces=30)
        msg = await s.ask("twelve points please")
        await s.done(msg["id"])
        draft, notice = s.live(msg["id"])
        assert draft.startswith("- point 0:") and draft.endswith(
            "*(The answer stopped here; see the message below.)*"
        )
        assert notice.startswith("⚠️") and "could not be reached" in notice
