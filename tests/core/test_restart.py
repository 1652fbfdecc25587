"""A crash (SIGKILL) mid-turn loses no stored history, leaves no sandbox process, and is reported."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

from tests.fakes.openai_fake import FakeOpenAI
from tests.process_env import process_env


def _env(tmp_path: Path, base_url: str) -> dict[str, str]:
    return process_env(tmp_path, OPENAI_BASE_URL=base_url)


def _processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains the marker (zombies have an empty one)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry))
    return pids


async def _start(tmp_path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console", "--thread", "crash",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path, env=env,
    )  # fmt: skip


async def test_sigkill_mid_turn_keeps_history_kills_the_run_and_tells_the_user(tmp_path):
    marker = f"{uuid.uuid4().int % 10**6}.25"  # a sleep length no other process uses
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, fake.base_url)
        # 1. a finished exchange that must survive
        fake.enqueue_text("Noted, the code word is tangerine.")
        first = await _start(tmp_path, env)
        await asyncio.wait_for(first.communicate(b"remember the code word tangerine\n"), 60)
        # 2. a turn killed while its code is running in the sandbox
        fake.enqueue_tool_call(f"import subprocess\nsubprocess.run(['sleep', '{marker}'])")
        victim = await _start(tmp_path, env)
        assert victim.stdin is not None
        victim.stdin.write(b"sleep for a minute\n")
        await victim.stdin.drain()
        await fake.wait_for_requests(3, timeout=30)  # first turn, then this turn's agent + review calls
        for _ in range(200):  # wait until the sandboxed code is running
            if _processes_with(marker):
                break
            await asyncio.sleep(0.05)
        assert _processes_with(marker), "the sandboxed code never started"
        os.kill(victim.pid, signal.SIGKILL)
        await victim.wait()
        for _ in range(100):  # --die-with-parent and the pid namespace take the run down
            if not _processes_with(marker):
                break
            await asyncio.sleep(0.05)
        assert _processes_with(marker) == [], "a sandbox process outlived the bot"
        # 3. restart: the interrupted turn is reported and the conversation continues
        fake.enqueue_text("The code word was tangerine.")
        again = await _start(tmp_path, env)
        out, err = await asyncio.wait_for(again.communicate(b"what was the code word?\n"), 60)
    text = out.decode()
    assert again.returncode == 0, err.decode()
    assert "restarted while answering" in text and "sleep for a minute" in text
    assert "answer: The code word was tangerine." in text
    assert "remember the code word tangerine" in str(fake.agent_requests[-1]["messages"])
