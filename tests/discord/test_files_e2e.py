"""Discord attachments end to end: the fake's CDN -> the bot's fetcher -> the thread's workspace -> code
in the real sandbox; a refused attachment is named in the thread and the question still answered."""

from __future__ import annotations

import json

from tests.discord.test_files import stack_with_cdn

CSV = b"city,temp\nOslo,4\nLima,19\nCairo,23\n"
MEAN = "import pandas as pd\ndf = pd.read_csv('temps.csv')\nresult = df['temp'].mean()"
FOLLOW = "result = (int(df['temp'].max()), open('x.csv').read().strip())"


def said(s, thread: int | str) -> str:
    """Everything the bot posted or edited in the thread."""
    return json.dumps([c.json for c in s.fake.calls if c.path.startswith(f"/channels/{thread}/")])


async def test_an_attached_csv_is_read_by_the_code_and_a_follow_up_builds_on_it(tmp_path):
    async with stack_with_cdn(tmp_path) as s:
        s.llm.enqueue_tool_call(MEAN)
        s.llm.enqueue_text("The mean temperature is 15.3.")
        first = await s.ask("mean temperature?", attachments=[s.fake.attachment("temps.csv", CSV)])
        thread = first["id"]
        await s.done(thread)
        assert "15.333333333333334" in said(s, thread)

        s.llm.enqueue_tool_call(FOLLOW)
        s.llm.enqueue_text("Max 23.")
        more = [s.fake.attachment("../../x.csv", b"hi", channel_id=int(thread))]
        await s.fake.send_message("and the max?", s.alice, channel_id=int(thread), attachments=more)
        await s.done(thread, turns=2)
        assert "(23, 'hi')" in said(s, thread)  # df from turn 1; the file landed as x.csv
        assert s.contents(thread)[-1] == "Max 23."
        assert len(s.fake.cdn_requests) == 2
        assert not any("Authorization" in r.headers for r in s.fake.cdn_requests)


async def test_an_attachment_over_the_cap_is_refused_with_the_limit_named(tmp_path):
    async with stack_with_cdn(tmp_path, CODEBOT_LIMIT_FILE_SIZE="1") as s:
        s.llm.enqueue_tool_call("import os\nresult = sorted(os.listdir('.'))")
        s.llm.enqueue_text("Only the small one.")
        big = s.fake.attachment("big.csv", b"x" * (3 << 20), declared_size=100, chunked=True)
        first = await s.ask("which files?", attachments=[big, s.fake.attachment("small.csv", CSV)])
        await s.done(first["id"])
        # The turn shows it is working (and so opens the thread) before it fetches the files: the
        # refusal is named inside the thread, not beside the question in the channel.
        notices = [c for c in s.fake.calls if "1 MB limit per file (`file_size`)" in json.dumps(c.json)]
        assert len(notices) == 1 and "big.csv" in notices[0].json["content"]
        assert notices[0].path.startswith(f"/channels/{first['id']}/")
        assert "['small.csv']" in said(s, first["id"])
        assert s.contents(first["id"])[-1] == "Only the small one."
