"""`/codebot files` on Discord, through real discord.py interactions, in the thread of a question."""

from __future__ import annotations

from tests.discord.stack import discord_stack
from tests.discord.test_commands import _answer


async def test_files_in_a_thread_lists_what_its_runs_kept(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call("open('notes.txt', 'w').write('hello')\ncount = 3")
        s.llm.enqueue_text("Wrote notes.txt.")
        msg = await s.ask("write a note")
        await s.done(msg["id"])
        listing = await _answer(
            s, await s.fake.slash("codebot", "files", user=s.alice, channel_id=int(msg["id"]))
        )
        assert "notes.txt" in listing and "5 B" in listing and "`count` (int)" in listing, listing
        outside = await _answer(s, await s.fake.slash("codebot", "files", user=s.alice))
        assert "inside the thread" in outside
