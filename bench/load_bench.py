"""Load run (issue 7): questions across threads at a steady rate through `codebot slack --http`.

Three processes on loopback: this one (load generator + fake Slack), the fake LLM
(`tests.fakes.serve_openai`: latency, a share of 500s, one sandbox step per question), and the bot
itself (`python -m bot slack --http`, real core, real SQLite file, real sandbox). A share of the
questions is delivered twice, as Slack's retries (`X-Slack-Retry-Num`), to prove de-duplication.

    python bench/load_bench.py --questions 1000 --threads 200 --seconds 300
    python bench/load_bench.py --questions 200 --threads 40 --seconds 60

Prints: questions answered, duplicates (a thread got more final replies than questions; must be 0),
lost (no answer and no error notice; must be 0), ack latency p50/p99, turn latency p50/p99, the bot's
peak RSS, and RSS growth after warm-up (RSS at 20% of the run vs at 100%; target < 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.slack_fake import Call, FakeSlack
from tests.reliability.bot_process import BotProcess, bot_environ, start_bot
from tests.slack.payloads import dumps, mention, sign

ANSWER = "The answer is 42."
CODE = "result = 6 * 7"
FINAL_ICONS = (":warning:", ":no_entry_sign:", ":no_entry:", ":octagonal_sign:")  # error-type notices
USERS = 50


@dataclass
class Run:
    """What the generator sent and measured."""

    sent: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # root -> send times
    acks: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, kB)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def rss_kb(pid: int) -> int:
    """Resident set size of one process (kB), from /proc (a tiny read of procfs)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def final_kind(call: Call) -> str | None:
    """'answer', 'notice' (an error the user can act on), or None for status/progress/step posts."""
    if call.params.get("text") == ANSWER:
        return "answer"
    return "notice" if first_block_text(call).startswith(FINAL_ICONS) else None


def first_block_text(call: Call) -> str:
    """The text of a post's first block (where a notice says what went wrong)."""
    blocks = call.params.get("blocks") or []
    first = blocks[0] if blocks else {}
    return str((first.get("text") or {}).get("text", "")) if isinstance(first, dict) else ""


async def start_llm(args: argparse.Namespace) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.serve_openai",
        "--latency", str(args.llm_min), str(args.llm_max), "--error-rate", str(args.error_rate),
        "--auto-code", CODE, "--text", ANSWER,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    return proc, url


async def deliver(http: aiohttp.ClientSession, bot: BotProcess, run: Run, body: dict, retry: int) -> None:
    raw = dumps(body)
    headers = {"Content-Type": "application/json", **sign(raw)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    started = time.perf_counter()
    async with http.post(bot.events_url, data=raw, headers=headers) as resp:
        await resp.read()
    run.acks.append(time.perf_counter() - started)
    run.statuses[resp.status] += 1


async def retry_later(http: aiohttp.ClientSession, bot: BotProcess, run: Run, body: dict, rng: random.Random):
    await asyncio.sleep(rng.uniform(0.2, 1.5))  # Slack retries after its 3 s timeout; sooner is harsher
    await deliver(http, bot, run, body, 1)


async def sample_rss(pid: int, run: Run, t0: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        run.rss.append((time.monotonic() - t0, await asyncio.to_thread(rss_kb, pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def question(i: int, threads: int, roots: list[str]) -> dict:
    """The i-th question: the first in its thread opens it, later ones are mentions in the thread."""
    t = i % threads
    ts = f"{1700000000 + i}.000100"
    if i < threads:
        roots.append(ts)
        thread_ts = None
    else:
        thread_ts = roots[t]
    text = f"q{i}: what is six times seven?" if thread_ts is None else f"q{i}: and again?"
    return mention(text, user=f"U{t % USERS:03d}", ts=ts, thread_ts=thread_ts, event_id=f"Ev{i:06d}")


async def drive(args: argparse.Namespace, bot: BotProcess, slack: FakeSlack, run: Run) -> float:
    """Send every question at the steady rate; return when every thread has its replies (or timeout)."""
    rng = random.Random(args.seed)
    interval = args.seconds / args.questions
    roots: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:
        t0 = time.monotonic()
        for i in range(args.questions):
            await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
            body = question(i, args.threads, roots)
            run.sent[body["event"].get("thread_ts") or body["event"]["ts"]].append(time.monotonic())
            tasks.add(asyncio.create_task(deliver(http, bot, run, body, 0)))
            if rng.random() < args.dup_share:
                tasks.add(asyncio.create_task(retry_later(http, bot, run, body, rng)))
        await asyncio.gather(*tasks)
        sent_for = time.monotonic() - t0
        for _ in range(int(args.drain * 2)):  # poll the fake's record every 0.5 s, bounded
            if all_replied(slack, run):
                break
            await asyncio.sleep(0.5)
    return sent_for


def all_replied(slack: FakeSlack, run: Run) -> bool:
    return all(len(finals(slack, root)) >= len(times) for root, times in run.sent.items())


def finals(slack: FakeSlack, root: str) -> list[Call]:
    return [c for c in slack.thread_posts("C1", root) if final_kind(c)]


def report(args: argparse.Namespace, run: Run, slack: FakeSlack, sent_for: float, exit_code: int) -> None:
    answered = notices = duplicates = lost = 0
    turn_s: list[float] = []
    for root, times in run.sent.items():
        got = finals(slack, root)
        answered += sum(1 for c in got[: len(times)] if final_kind(c) == "answer")
        notices += sum(1 for c in got[: len(times)] if final_kind(c) == "notice")
        duplicates += max(0, len(got) - len(times))
        lost += max(0, len(times) - len(got))
        # A thread's questions are answered one at a time, in order: the k-th reply is the k-th answer.
        turn_s += [c.at - t for c, t in zip(got, times, strict=False)]
    retries = sum(run.statuses.values()) - args.questions
    acks_ms = [a * 1000 for a in run.acks]
    peak = max(kb for _, kb in run.rss)

    def at(share: float) -> int:  # the RSS sample nearest to that share of the sending period
        return min(run.rss, key=lambda s: abs(s[0] - share * sent_for))[1]

    growth = (at(1.0) - at(0.2)) / at(0.2) * 100
    met = "met" if pct(acks_ms, 99) < 100 else "NOT met"
    flat = "flat" if growth < 10 else "NOT flat"
    lines = [
        f"questions sent: {args.questions} over {sent_for:.0f} s to {args.threads} threads "
        f"(+{retries} Slack retries of the same events); HTTP statuses {dict(run.statuses)}",
        f"fake LLM: {args.llm_min}-{args.llm_max} s per call, {args.error_rate:.0%} errors; "
        "one sandbox run per question",
        f"answered: {answered}   error notices: {notices}   duplicates: {duplicates}   lost: {lost}",
        f"ack latency:  p50 {pct(acks_ms, 50):6.1f} ms   p99 {pct(acks_ms, 99):6.1f} ms   "
        f"max {max(acks_ms):6.1f} ms   (target p99 < 100 ms: {met})",
        f"turn latency: p50 {pct(turn_s, 50):6.2f} s    p99 {pct(turn_s, 99):6.2f} s",
        f"bot RSS: peak {peak / 1024:.1f} MB; at 20% {at(0.2) / 1024:.1f} MB, at 100% "
        f"{at(1.0) / 1024:.1f} MB -> growth {growth:+.1f}% ({flat}, target < 10%)",
    ]
    print("\n".join(lines))
    print(f"bot exit code after SIGTERM: {exit_code}")


async def main(args: argparse.Namespace) -> None:
    llm_proc, llm_url = await start_llm(args)
    run = Run()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with FakeSlack() as slack:
                env = bot_environ(
                    Path(tmp), slack.base_url, llm_url,
                    CODEBOT_LIMIT_USER_RUNS_PER_HOUR="1000", CODEBOT_LIMIT_WORKSPACE_RUNS_PER_DAY="100000",
                    CODEBOT_LIMIT_CONCURRENCY="32", CODEBOT_SHUTDOWN_GRACE_S="30",
                )  # fmt: skip
                bot = await start_bot(env, Path(tmp))
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(bot.proc.pid, run, time.monotonic(), stop))
                try:
                    sent_for = await drive(args, bot, slack, run)
                finally:
                    stop.set()
                    await sampler
                    bot.proc.send_signal(signal.SIGTERM)
                    exit_code = await bot.wait(60)
                report(args, run, slack, sent_for, exit_code)
    finally:
        assert llm_proc.stdin is not None
        llm_proc.stdin.close()
        await asyncio.wait_for(llm_proc.wait(), 10)


def load_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The load's shape, shared with bench/replicas_bench.py so both benches run the same load."""
    p.add_argument("--questions", type=int, default=1000)
    p.add_argument("--threads", type=int, default=200)
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--dup-share", type=float, default=0.05, help="share of events delivered twice")
    p.add_argument("--llm-min", type=float, default=0.5)
    p.add_argument("--llm-max", type=float, default=2.0)
    p.add_argument("--error-rate", type=float, default=0.03)
    p.add_argument("--drain", type=float, default=120, help="seconds to wait for the last replies")
    p.add_argument("--seed", type=int, default=7)
    return p


if __name__ == "__main__":
    asyncio.run(main(load_options(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args()))
