"""What a user sees per answer on Slack and Discord: messages left, Web API calls, time to first text.

Run from a checkout: `python bench/ux_bench.py`. It drives the real bot (slack-bolt / discord.py) against
the fakes in tests/fakes with the real core and sandbox, for a one-step and a three-step answer. The
model "writes" its reply at 8 characters per 20 ms (the fake streams it that fast, or answers after
as long when not asked to stream), so time-to-first-text compares like with like. It only uses
interfaces that predate one-message-per-step, so the same script measures an older checkout too.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.discord.stack import discord_stack
from tests.fakes.slack_fake import FakeSlack
from tests.slack.payloads import mention
from tests.slack.stack import slack_stack

ANSWER = "\n".join(f"Line {i}: the value is {i * 7}, as the program printed." for i in range(10))
LOOKUPS = ("users.info", "auth.test", "apps.connections.open")
SHOWS = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")


def _script(llm, steps: int) -> None:
    llm.stream_delay_s = 0.02
    for n in range(steps):
        llm.enqueue_tool_call(f"print({n} * 7)")
    llm.enqueue_text(ANSWER)


def _first_text_at(slack: FakeSlack) -> float:
    marker = "Line 0"
    return min(c.at for c in slack.calls if c.method in SHOWS and marker in str(c.params))


async def slack_once(steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack, slack_stack(Path(tmp), slack, status_interval_s=1.0) as s:
            _script(s.llm, steps)
            root = f"17000005{steps:02d}.000100"
            await s.event(mention("compute please", ts=root))
            await slack.wait_for(lambda: slack.reactions("white_check_mark"), timeout_s=60)
            await s.core.wait_idle(30)
            posts = slack.thread_posts("C1", root)
            streams = slack.calls_to("chat.startStream")
            deletes = slack.calls_to("chat.delete")
            calls = [c for c in slack.calls if c.method not in LOOKUPS]
            if "-v" in sys.argv:
                print(" ".join(c.method for c in calls))
            return {
                "messages": len(posts) + len(streams) - len(deletes),
                "api_calls": len(calls),
                "first_text_ms": (_first_text_at(slack) - s.llm.first_token_at[-1]) * 1000,
            }


async def discord_once(steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with discord_stack(Path(tmp)) as s:
            _script(s.llm, steps)
            msg = await s.ask("compute please")
            await s.fake.wait_for("PUT", rf"/channels/\d+/messages/{msg['id']}/reactions/✅/@me", within_s=60)
            await s.core.wait_idle(30)
            tid = msg["id"]
            posts = s.fake.calls_to("POST", rf"/channels/{tid}/messages")
            deletes = s.fake.calls_to("DELETE", rf"/channels/{tid}/messages/\d+")
            rest = [c for c in s.fake.calls if "/typing" not in c.path and c.method != "GET"]
            shown = [c for c in s.fake.calls if c.method in ("POST", "PATCH") and "Line 0" in str(c.json)]
            return {
                "messages": len(posts) - len(deletes),
                "api_calls": len(rest),
                "first_text_ms": (min(c.t for c in shown) - s.llm.first_token_at[-1]) * 1000,
            }


async def main() -> None:
    for platform, run in (("slack", slack_once), ("discord", discord_once)):
        for steps in (1, 3):
            r = await run(steps)
            print(
                f"{platform:8s} {steps} step(s): {r['messages']:.0f} messages besides the question, "
                f"{r['api_calls']:.0f} API calls, first answer text {r['first_text_ms']:.0f} ms "
                "after the model's first token"
            )


if __name__ == "__main__":
    asyncio.run(main())
