"""The `codebot` command line as an operator uses it: doctor, run, Ctrl-C in the console."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_fake import FakeOpenAI
from tests.process_env import process_env


def _default_sigint() -> None:
    # Run without a terminal (nohup, CI, a background job), SIGINT is ignored and children inherit that;
    # the console must get Ctrl-C as a user's terminal would deliver it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return process_env(tmp_path, **extra)


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Never leave the console behind, whatever the test saw."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def _codebot(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_doctor_reports_every_layer_without_secrets_or_side_effects(tmp_path):
    env = _env(tmp_path, OPENAI_API_KEY="sk-doctor-secret-123", SLACK_BOT_TOKEN="xoxb-doctor-secret")
    code, out, err = await _codebot(tmp_path, env, "doctor")
    assert code == 0, out + err
    for layer in ("llm", "store", "sandbox/user namespaces", "sandbox/network", "sandbox/live run"):
        assert f"[ok] {layer}" in out
    assert "All checks passed." in out
    assert "secret" not in out + err and "SLACK_BOT_TOKEN" in out  # names, never values
    assert not (tmp_path / "bot.db").exists()  # checking must not create the database


async def test_doctor_says_what_is_missing(tmp_path):
    code, out, _ = await _codebot(tmp_path, _env(tmp_path), "doctor")
    assert code == 1
    assert "[!!] llm" in out and "OPENAI_API_KEY" in out and "1 problem(s) found." in out


async def test_codebot_run_prints_json_with_the_contract_keys(tmp_path):
    (tmp_path / "job.py").write_text("print('hi')\nresult = {'answer': 42}\n")
    code, out, _ = await _codebot(tmp_path, _env(tmp_path), "run", "job.py", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["stdout"] == "hi\n" and data["result"] == "{'answer': 42}"
    keys = {"stdout", "stderr", "result", "exit_code", "timed_out", "truncated", "duration_ms", "files"}
    assert keys | {"killed_reason"} <= set(data)


async def test_ctrl_c_in_the_console_exits_cleanly(tmp_path):
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "console",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path, env=env, preexec_fn=_default_sigint,
        )  # fmt: skip
        try:
            await asyncio.sleep(2)  # let it start and wait for input
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            _kill(proc)
    assert proc.returncode == 130
    assert b"Traceback" not in err, err.decode()


async def test_ctrl_c_during_an_answer_stops_promptly_and_records_the_turn(tmp_path):
    async with FakeOpenAI() as fake:
        fake.enqueue_tool_call("import time\ntime.sleep(20)")
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "console", "--thread", "t",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path, env=env, preexec_fn=_default_sigint,
        )  # fmt: skip
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"sleep a while\n")
            await proc.stdin.drain()
            await fake.wait_for_requests(2, timeout=30)  # the agent call and its review: the run is starting
            await asyncio.sleep(1)
            started = asyncio.get_running_loop().time()
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            took = asyncio.get_running_loop().time() - started
        finally:
            _kill(proc)
    assert proc.returncode == 130 and took < 5, (took, err.decode())
    assert b"Traceback" not in err
    assert "restarting" in out.decode()  # the turn was closed, with a word to the user


async def test_codebot_run_takes_sandbox_settings_from_dotenv(tmp_path):
    (tmp_path / ".env").write_text("CODEBOT_SANDBOX_TIMEOUT_S=1\n")
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(5)\n")
    code, out, _ = await _codebot(tmp_path, _env(tmp_path), "run", "slow.py", "--json")
    data = json.loads(out)
    assert code == 1 and data["timed_out"] is True and data["duration_ms"] < 3000


@pytest.mark.parametrize("args", [("run", "job.py"), ("doctor",), ("setup",)])
async def test_every_command_reads_the_sandbox_settings_of_dotenv(tmp_path, args):
    (tmp_path / "job.py").write_text("result = 1\n")
    (tmp_path / ".env").write_text("CODEBOT_SANDBOX_CGROUP=v3\n")  # the process's environment has none
    env = {k: v for k, v in _env(tmp_path).items() if k != "CODEBOT_SANDBOX_CGROUP"}
    code, out, err = await _codebot(tmp_path, env, *args)
    assert code == 2 and out == ""
    assert "configuration error" in err and "CODEBOT_SANDBOX_CGROUP must be one of auto, v1, v2, off" in err
