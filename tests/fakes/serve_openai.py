"""Run the fake OpenAI server in its own process (benchmarks): prints its base URL, serves until stdin closes.

python -m tests.fakes.serve_openai --latency 0.2 0.2 --auto-code "result = 1" --error-rate 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.fakes.openai_fake import FakeOpenAI


async def serve(args: argparse.Namespace) -> None:
    async with FakeOpenAI(seed=args.seed) as fake:
        fake.latency = tuple(args.latency) if args.latency else None  # type: ignore[assignment]
        fake.error_rate = args.error_rate
        fake.auto_code = args.auto_code
        fake.default_text = args.text
        print(fake.base_url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # parent closes stdin (or dies) -> stop


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--latency", nargs=2, type=float, metavar=("LO", "HI"))
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--auto-code", default=None)
    p.add_argument("--text", default="done")
    p.add_argument("--seed", type=int, default=0)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
