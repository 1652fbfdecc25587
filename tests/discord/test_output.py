"""What lands in the thread: files, long output, mention-proof text, and 429 handling."""

from __future__ import annotations

import re

from tests.discord.stack import discord_stack

PLOT = """
import matplotlib.pyplot as plt
plt.plot([0, 1, 2], [0, 1, 4])
plt.savefig("plot.png")
print("saved")
"""


async def test_png_written_by_the_code_is_attached_in_the_thread(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call(PLOT)
        s.llm.enqueue_text("Here is your plot.")
        msg = await s.ask("plot x squared")
        await s.done(msg["id"])
        edits = s.fake.calls_to("PATCH", rf"/channels/{msg['id']}/messages/\d+")
        uploads = [c for c in s.posts(msg["id"]) + edits if c.files]  # added to the step's message
        assert len(uploads) == 1
        [(_field, name, data)] = uploads[0].files
        assert name == "plot.png" and data.startswith(b"\x89PNG\r\n\x1a\n")
        assert uploads[0].json["attachments"] == [{"id": 0, "filename": "plot.png"}]
        assert "saved" in uploads[0].json["content"]
        [step, _answer] = s.fake.live(msg["id"])
        assert [a["filename"] for a in step["attachments"]] == ["plot.png"]


async def test_long_output_is_cut_to_2000_chars_and_attached_in_full(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call("for i in range(3000):\n    print(f'row {i}')")
        s.llm.enqueue_text(
            "A long answer.\n" + "\n".join(f"- point {i}: " + "detail " * 8 for i in range(80))
        )
        msg = await s.ask("print 3000 rows")
        await s.done(msg["id"])
        posts = s.posts(msg["id"])
        edits = s.fake.calls_to("PATCH", rf"/channels/{msg['id']}/messages/\d+")
        assert all(len(c.json["content"]) <= 2000 for c in posts + edits)  # the fake answers 400 above that
        [result] = [c for c in posts + edits if c.files]
        [(_, name, data)] = result.files
        assert name == "output-step1.txt"
        assert "row 0" in data.decode() and "row 2999" in data.decode()
        answer_parts = [c for c in s.live(msg["id"]) if "point" in c]
        assert len(answer_parts) >= 2  # split across messages, nothing lost
        assert all(f"point {i}:" in "\n".join(answer_parts) for i in range(80))


async def test_output_and_model_text_can_never_ping(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call("print('@everyone @here <@123456789> <@&987654321>')\nprint('```')")
        s.llm.enqueue_text("Done, @everyone! Also <@123456789>.")
        msg = await s.ask("ping everyone")
        await s.done(msg["id"])
        thread_calls = s.posts(msg["id"]) + s.fake.calls_to("PATCH", rf"/channels/{msg['id']}/messages/\d+")
        assert len(thread_calls) >= 4  # the step posted and edited twice, the answer
        for call in thread_calls:
            assert call.json["allowed_mentions"] == {"parse": []}
            assert not re.search(r"@(everyone|here)|<@[!&]?\d+>", call.json["content"])
        result = next(c for c in s.live(msg["id"]) if "Output" in c)
        assert result.split("**Output**")[1].count("```") == 2  # the printed fence did not close the block


async def test_a_rate_limited_post_is_retried(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.fake.fail_next("POST", r"/channels/\d+/messages", status=429, retry_after=0.2)
        s.llm.enqueue_text("Still delivered.")
        msg = await s.ask("hello")
        await s.done(msg["id"])
        posts = s.posts(msg["id"])
        first, second = posts[0], posts[1]
        assert first.json["content"] == second.json["content"]  # the 429'd post, sent again
        assert second.t - first.t >= 0.2
        assert s.contents(msg["id"])[-1] == "Still delivered."
