"""Replicas bench (issue 15): the load bench on SQLite (one process) and PostgreSQL (one and two replicas).

Same load as bench/load_bench.py (questions across threads at a steady rate, a share delivered twice as
Slack retries, a fake LLM with latency and errors, one sandbox run per question), side by side in one
run. With two replicas every delivery goes to a random replica, so a thread's follow-ups and an
event's retries land on either: the thread lock, de-duplication and leases all work across processes.

    python bench/replicas_bench.py --quick            # 120 questions, 30 threads, ~1 min per setup
    python bench/replicas_bench.py                    # 1,000 questions, 200 threads, 300 s per setup
    python bench/replicas_bench.py --quick --probe    # also split each store call's time (loop_probe/)

PostgreSQL comes from CODEBOT_TEST_POSTGRES (`source .ci/postgres.sh`); each setup gets a fresh schema.
Prints per setup: answered, duplicates, lost, ack p50/p99, turn p50/p99, store calls per turn (and
which; the gate and leases apart from the rest), store time per turn (mean, and p50 of the turns' own
totals), and the p99 latency of a store call (from the bots' /metrics histograms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import load_bench as lb

from tests.fakes.slack_fake import FakeSlack
from tests.ops.process import free_port
from tests.reliability.bot_process import BotProcess, bot_environ, start_bot
from tests.store.backends import postgres_schema

SETUPS = (("sqlite", 1), ("postgres", 1), ("postgres", 2))
_SAMPLE = re.compile(
    r"^(codebot_store_seconds_(?:bucket|count|sum)|codebot_turn_store_seconds_bucket|codebot_turns_total)"
    r"(?:\{([^}]*)\})? (\S+)$"
)
# Round trips one process alone would not make: the shared workspace queue, thread locks, lease renewals
# and the replica's poll for Stops pressed elsewhere.
# (start_turn_leased is the turn's start, as start_turn on SQLite; its lock and ticket ride along with it.)
GATE_AND_LEASES = frozenset(
    {"gate_enter", "gate_poll", "gate_leave", "lock_thread", "renew_turn", "release_thread"}
    | {"stop_requests"}
)


@dataclass(frozen=True)
class Figures:
    setup: str
    answered: int
    notices: int
    duplicates: int
    lost: int
    ack_ms: tuple[float, float]
    turn_s: tuple[float, float]
    calls_per_turn: float
    gate_calls_per_turn: float
    store_ms_per_turn: float
    store_ms_p50: float
    store_p99_ms: float
    top_calls: str
    wall_s: float
    probe: str = ""  # with --probe: where the store calls' time went (bench/loop_probe)
    notice_texts: tuple[str, ...] = ()  # the error notices' words (the first few), to tell their cause


async def drive(args: argparse.Namespace, bots: list[BotProcess], slack: FakeSlack, run: lb.Run) -> float:
    """Send the questions at a steady rate, each delivery to a random replica; wait for the replies."""
    rng = random.Random(args.seed)
    interval = args.seconds / args.questions
    roots: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:
        t0 = time.monotonic()
        for i in range(args.questions):
            await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
            body = lb.question(i, args.threads, roots)
            run.sent[body["event"].get("thread_ts") or body["event"]["ts"]].append(time.monotonic())
            tasks.add(asyncio.create_task(lb.deliver(http, rng.choice(bots), run, body, 0)))
            if rng.random() < args.dup_share:
                tasks.add(asyncio.create_task(lb.retry_later(http, rng.choice(bots), run, body, rng)))
        await asyncio.gather(*tasks)
        sent_for = time.monotonic() - t0
        for _ in range(int(args.drain * 2)):  # poll the fake's record every 0.5 s, bounded
            if lb.all_replied(slack, run):
                break
            await asyncio.sleep(0.5)
    return sent_for


async def scrape(http: aiohttp.ClientSession, port: int) -> list[tuple[str, dict[str, str], float]]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    samples = []
    for line in text.splitlines():
        if m := _SAMPLE.match(line):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return samples


@dataclass(frozen=True)
class StoreFigures:
    calls: float  # store calls per turn
    gate_calls: float  # of which the gate and leases (GATE_AND_LEASES)
    ms_mean: float  # store ms per turn
    ms_p50: float  # a turn's store ms, median (from codebot_turn_store_seconds)
    call_p99_ms: float  # one call's p99
    top: str  # the calls per turn by operation


def store_figures(samples: list[tuple[str, dict[str, str], float]]) -> StoreFigures:
    """Per-turn store figures from the bots' /metrics samples (summed over replicas)."""
    turns = sum(v for name, _, v in samples if name == "codebot_turns_total")
    calls: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    per_turn: dict[float, float] = defaultdict(float)
    for name, labels, value in samples:
        if name == "codebot_turn_store_seconds_bucket":
            per_turn[float(labels["le"])] += value
            continue
        if labels.get("op") in ("open", "close"):
            continue  # once per process, not per turn
        if name.endswith("_count"):
            calls[labels["op"]] += value
        elif name.endswith("_sum"):
            seconds[labels["op"]] += value
        elif name.endswith("_bucket"):
            buckets[float(labels["le"])] += value
    total_s = sum(seconds.values())
    n = sum(calls.values())
    p99 = next((le for le, cum in sorted(buckets.items()) if cum >= 0.99 * n), float("inf"))
    per = max(turns, 1)
    top = ", ".join(
        f"{op} {c / per:.2f} ({seconds[op] / c * 1000:.1f} ms)"
        for op, c in sorted(calls.items(), key=lambda kv: -kv[1])
        if c
    )
    gate = sum(c for op, c in calls.items() if op in GATE_AND_LEASES)
    p50 = quantile(per_turn, 0.5)
    return StoreFigures(n / per, gate / per, total_s * 1000 / per, p50 * 1000, p99 * 1000, top)


def quantile(cumulative: dict[float, float], q: float) -> float:
    """The q-quantile of a Prometheus histogram (cumulative counts by upper bound), linear in a bucket."""
    bounds = sorted(cumulative.items())
    if not bounds or bounds[-1][1] <= 0:
        return float("nan")
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for le, cum in bounds:
        if cum >= rank:
            if le == float("inf"):
                return lower  # beyond the last finite bound: report that bound
            return lower + (le - lower) * (rank - below) / max(cum - below, 1e-12)
        lower, below = le, cum
    return lower


def figures(setup: str, run: lb.Run, slack: FakeSlack, samples: list, wall_s: float) -> Figures:
    answered = notices = duplicates = lost = 0
    turn_s: list[float] = []
    said: list[str] = []
    for root, times in run.sent.items():
        got = lb.finals(slack, root)
        answered += sum(1 for c in got[: len(times)] if lb.final_kind(c) == "answer")
        notices += sum(1 for c in got[: len(times)] if lb.final_kind(c) == "notice")
        said += [
            str(c.params.get("text", ""))[:160] for c in got[: len(times)] if lb.final_kind(c) == "notice"
        ]
        duplicates += max(0, len(got) - len(times))
        lost += max(0, len(times) - len(got))
        turn_s += [c.at - t for c, t in zip(got, times, strict=False)]
    acks = [a * 1000 for a in run.acks]
    st = store_figures(samples)
    return Figures(
        setup, answered, notices, duplicates, lost,
        (lb.pct(acks, 50), lb.pct(acks, 99)), (lb.pct(turn_s, 50), lb.pct(turn_s, 99)),
        st.calls, st.gate_calls, st.ms_mean, st.ms_p50, st.call_p99_ms, st.top, wall_s,
        notice_texts=tuple(said[:3]),
    )  # fmt: skip


@asynccontextmanager
async def database(kind: str, tmp: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield str(tmp / "bench.db")
        return
    dsn = os.environ.get("CODEBOT_TEST_POSTGRES", "").strip()
    if not dsn:
        raise SystemExit("set CODEBOT_TEST_POSTGRES (source .ci/postgres.sh) for the PostgreSQL setups")
    async with postgres_schema(dsn) as schema_dsn:
        yield schema_dsn


async def one_setup(args: argparse.Namespace, kind: str, replicas: int, llm_url: str) -> Figures:
    setup = f"{kind} x{replicas}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with FakeSlack() as slack, database(kind, tmp) as db:
            bots, ports = [], []
            try:
                for i in range(replicas):
                    cwd = tmp / f"r{i}"
                    cwd.mkdir()
                    ports.append(free_port())
                    env = probe_environ(args, tmp / f"probe-r{i}", bot_environ(
                        cwd, slack.base_url, llm_url, CODEBOT_DB=db, CODEBOT_HTTP_PORT=str(ports[-1]),
                        CODEBOT_LIMIT_USER_RUNS_PER_HOUR="1000",
                        CODEBOT_LIMIT_WORKSPACE_RUNS_PER_DAY="100000",
                        CODEBOT_LIMIT_CONCURRENCY="32", CODEBOT_SHUTDOWN_GRACE_S="30",
                    ))  # fmt: skip
                    bots.append(await start_bot(env, cwd, timeout_s=60))
                t0 = time.monotonic()
                run = lb.Run()
                signal_probes(args, bots, signal.SIGUSR1)  # count from here: startup left out
                await drive(args, bots, slack, run)
                wall = time.monotonic() - t0
                signal_probes(args, bots, signal.SIGUSR2)
                async with aiohttp.ClientSession() as http:
                    samples = [s for port in ports for s in await scrape(http, port)]
            finally:
                for bot in bots:
                    with contextlib.suppress(ProcessLookupError):
                        bot.proc.send_signal(signal.SIGTERM)
                for bot in bots:
                    await bot.wait(60)
            row = figures(setup, run, slack, samples, wall)
            return replace(row, probe=probe_summary(tmp)) if args.probe else row


def probe_environ(args: argparse.Namespace, out: Path, env: dict[str, str]) -> dict[str, str]:
    """With --probe, a bot that loads bench/loop_probe and writes its figures next to `out`."""
    if not args.probe:
        return env
    return {
        **env,
        "PYTHONPATH": f"{ROOT / 'bench' / 'loop_probe'}:{env['PYTHONPATH']}",
        "BENCH_LOOP_PROBE": str(out),
    }


def signal_probes(args: argparse.Namespace, bots: list[BotProcess], sig: signal.Signals) -> None:
    """With --probe: SIGUSR1 starts the probes' counts afresh, SIGUSR2 has them written."""
    if args.probe:
        for bot in bots:
            bot.proc.send_signal(sig)


def probe_summary(tmp: Path) -> str:
    """The store calls' time split by bench/loop_probe, summed over the replicas, in ms per call."""
    keys = ("calls", "wall", "own", "idle", "busy", "queued", "after", "run_s", "loop_busy_s")
    total = dict.fromkeys(keys, 0.0)
    slowest: list[tuple[float, str]] = []
    for path in tmp.glob("probe-r*.json"):
        got = json.loads(path.read_text())
        for key in keys:
            total[key] += got[key]
        slowest += [tuple(x) for x in got["slowest_callbacks"]]
    n = total["calls"]
    if not n:
        return "no PostgreSQL store call matched (SQLite has no reply to find)"
    ms = {key: total[key] * 1000 / n for key in ("wall", "own", "idle", "busy", "queued", "after")}
    lag = ms["queued"] + ms["after"]  # surely loop lag; the other callbacks before the read may be too
    most = lag + ms["busy"]
    return (
        f"{n:.0f} calls, {ms['wall']:.2f} ms each = {ms['own']:.2f} its own send "
        f"+ {ms['idle']:.2f} idle in select + {ms['busy']:.2f} other callbacks, then the reply read: "
        f"{ms['queued']:.2f} queued + {ms['after']:.2f} until the call returns; loop lag {lag:.2f} ms "
        f"for certain ({lag / ms['wall']:.0%}), at most {most:.2f} ({most / ms['wall']:.0%})\n"
        f"  loop busy {total['loop_busy_s'] / max(total['run_s'], 1e-9):.0%} of the run; longest callbacks: "
        + "; ".join(f"{ms:g} ms ({at})" for ms, at in sorted(slowest, reverse=True)[:3])
    )


def chosen_setups(spec: str | None) -> tuple[tuple[str, int], ...]:
    """`--setups postgres:1,postgres:2`: the setups to run, in that order (all three by default)."""
    if not spec:
        return SETUPS
    return tuple((kind, int(n or 1)) for kind, _, n in (part.partition(":") for part in spec.split(",")))


def print_table(rows: list[Figures]) -> None:
    def line(label: str, cells: list[str]) -> str:
        return f"{label:<26}" + "".join(f"{c:>18}" for c in cells)

    out = [line("", [r.setup for r in rows])]
    out.append(line("answered", [str(r.answered) for r in rows]))
    out.append(line("error notices", [str(r.notices) for r in rows]))
    out.append(line("duplicates (must be 0)", [str(r.duplicates) for r in rows]))
    out.append(line("lost (must be 0)", [str(r.lost) for r in rows]))
    out.append(line("ack p50 / p99 ms", [f"{r.ack_ms[0]:.1f} / {r.ack_ms[1]:.1f}" for r in rows]))
    out.append(line("turn p50 / p99 s", [f"{r.turn_s[0]:.2f} / {r.turn_s[1]:.2f}" for r in rows]))
    out.append(line("store calls per turn", [f"{r.calls_per_turn:.2f}" for r in rows]))
    out.append(line("  of which gate+leases", [f"{r.gate_calls_per_turn:.2f}" for r in rows]))
    out.append(line("  the rest", [f"{r.calls_per_turn - r.gate_calls_per_turn:.2f}" for r in rows]))
    out.append(line("store ms per turn (mean)", [f"{r.store_ms_per_turn:.2f}" for r in rows]))
    out.append(line("store ms per turn (p50)", [f"{r.store_ms_p50:.2f}" for r in rows]))
    out.append(line("store call p99 ms (<=)", [f"{r.store_p99_ms:g}" for r in rows]))
    out.append(line("wall time s", [f"{r.wall_s:.0f}" for r in rows]))
    base = rows[0]
    out.append(line("turn p50 vs first", [f"{r.turn_s[0] / base.turn_s[0]:.2f}x" for r in rows]))
    print("\n".join(out))
    for r in rows:
        print(f"{r.setup}: store calls per turn by operation (mean latency): {r.top_calls}")
    for r in rows:
        for text in r.notice_texts:
            print(f"{r.setup}: error notice: {text}")
    for r in rows:
        if r.probe:
            print(f"{r.setup}: store call time (loop probe): {r.probe}")


async def main(args: argparse.Namespace) -> None:
    llm_proc, llm_url = await lb.start_llm(args)
    rows = []
    try:
        for kind, replicas in chosen_setups(args.setups):
            rows.append(await one_setup(args, kind, replicas, llm_url))
            print(f"done: {rows[-1].setup}", file=sys.stderr, flush=True)
    finally:
        assert llm_proc.stdin is not None
        llm_proc.stdin.close()
        await asyncio.wait_for(llm_proc.wait(), 10)
    print(
        f"{args.questions} questions over {args.seconds:g} s to {args.threads} threads per setup, "
        f"{args.dup_share:.0%} delivered twice; fake LLM {args.llm_min}-{args.llm_max} s, "
        f"{args.error_rate:.0%} errors; one sandbox run per question"
    )
    print_table(rows)


if __name__ == "__main__":
    p = lb.load_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--quick", action="store_true", help="120 questions, 30 threads, 40 s per setup")
    p.add_argument("--probe", action="store_true", help="split each store call's time (bench/loop_probe)")
    p.add_argument("--setups", help="only these, e.g. postgres:1,postgres:2 (default: all three)")
    parsed = p.parse_args()
    if parsed.quick:
        parsed.questions, parsed.threads, parsed.seconds, parsed.drain = 120, 30, 40, 60
    asyncio.run(main(parsed))
