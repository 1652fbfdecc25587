"""MESSAGE_CREATE -> first status post in the new thread, with the fake LLM answering instantly.

Runs the fake Discord (REST + gateway), the fake LLM, the real core (SQLite store, sandbox) and a real
discord.py client on loopback, all in this one process. Each probe is a mention in the text channel:
the bot must claim the event in the store, create a public thread from the message and post its status
message there. The time is taken at the fake, from sending the gateway frame to receiving that POST.

    python bench/discord_bench.py [--messages 200]

Prints median, p99 and max for one-at-a-time probes, then for a burst of all probes sent at once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.discord.stack import bot_settings, running_bot
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack

TURN_SLOTS = 32
LIMITS = {  # let one user ask a few hundred questions in a row
    "CODEBOT_MAX_CONCURRENT_TURNS": str(TURN_SLOTS),
    "CODEBOT_LIMIT_USER_RUNS_PER_HOUR": "1000",
    "CODEBOT_LIMIT_WORKSPACE_RUNS_PER_DAY": "100000",
    "CODEBOT_LIMIT_CONCURRENCY": "32",
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def probe(fake: FakeDiscord, user: dict, text: str) -> tuple[float, float]:
    """Send one mention; return ms until the 👀 reaction (accepted) and until the first post in its thread."""
    msg = fake.message(f"<@{fake.bot_user['id']}> {text}", user, mention_bot=True)
    post, react = f"/channels/{msg['id']}/messages", f"/messages/{msg['id']}/reactions/"
    start = time.monotonic()
    await fake.dispatch("MESSAGE_CREATE", msg)
    first = await fake.wait_for_call(lambda c: c.method == "POST" and c.path == post, within_s=60)
    accepted = await fake.wait_for_call(lambda c: c.method == "PUT" and react in c.path, within_s=60)
    return (accepted.t - start) * 1000, (first.t - start) * 1000


def report(label: str, ms: list[float]) -> None:
    print(
        f"{label:<22} n={len(ms):<4} median {statistics.median(ms):7.2f} ms   "
        f"p99 {percentile(ms, 99):7.2f} ms   max {max(ms):7.2f} ms"
    )


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeDiscord(echo=False)
        await fake.start()
        try:
            async with FakeOpenAI() as llm, core_stack(Path(tmp), llm.base_url, **LIMITS) as core:
                llm.default_text = "done"
                async with running_bot(core, bot_settings(Path(tmp), fake)):
                    user = fake.user("bench")
                    await probe(fake, user, "warm-up")
                    await core.wait_idle(30)
                    one_by_one = []
                    for i in range(n):
                        one_by_one.append(await probe(fake, user, f"question {i}"))
                        await core.wait_idle(30)
                    burst = await asyncio.gather(*(probe(fake, user, f"burst {i}") for i in range(n)))
                    await core.wait_idle(120)
        finally:
            await fake.stop()
    print(f"MESSAGE_CREATE -> first status post in the new thread (fake LLM instant, {n} messages)")
    report("one at a time", [s for _, s in one_by_one])
    report("  accepted (👀)", [a for a, _ in one_by_one])
    print(f"all {n} sent at once (the core runs {TURN_SLOTS} turns at a time; the rest wait for a slot):")
    report("burst: status post", [s for _, s in burst])
    report("burst: accepted (👀)", [a for a, _ in burst])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    asyncio.run(main(parser.parse_args().messages))
