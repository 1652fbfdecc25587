"""`codebot console` as a user runs it: a real process, piped stdin, a fake LLM on loopback."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.fakes.openai_fake import FakeOpenAI
from tests.process_env import process_env


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return process_env(tmp_path, "console.db", **extra)


async def _console(tmp_path: Path, stdin: str, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 90)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_console_answers_a_question_end_to_end(tmp_path):
    async with FakeOpenAI() as fake:
        fake.enqueue_tool_call("import math\nresult = math.sqrt(2)")
        fake.enqueue_text("The square root of 2 is about 1.41421.")
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-test")
        code, out, err = await _console(tmp_path, "what is the sqrt of 2\n", env)
    assert code == 0, err
    assert "```python" in out and "math.sqrt(2)" in out
    assert "safety review: allowed" in out
    assert "1.4142135623730951" in out
    assert out.rstrip().endswith("answer: The square root of 2 is about 1.41421.")
    assert "sk-test" not in out + err


async def test_console_conversation_resumes_by_name(tmp_path):
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        fake.enqueue_text("Noted: your number is 7.")
        await _console(tmp_path, "remember the number 7\n", env, "--thread", "demo")
        fake.enqueue_text("It was 7.")
        code, out, _ = await _console(tmp_path, "what was my number?\n", env, "--thread", "demo")
    assert code == 0 and "answer: It was 7." in out
    assert "remember the number 7" in str(fake.agent_requests[-1]["messages"])


async def test_console_plot_file_is_saved(tmp_path):
    plot = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\nplt.savefig('plot.png')\n"
    )
    async with FakeOpenAI() as fake:
        fake.enqueue_tool_call(plot)
        fake.enqueue_text("Here is the plot.")
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        code, out, err = await _console(tmp_path, "plot 1 2 3\n", env, "--files-dir", "out")
    assert code == 0, err
    saved = tmp_path / "out" / "plot.png"
    assert saved.read_bytes().startswith(b"\x89PNG"), out


async def test_missing_api_key_is_a_one_line_configuration_error(tmp_path):
    env = _env(tmp_path)
    env.pop("OPENAI_API_KEY", None)
    code, _, err = await _console(tmp_path, "hi\n", env)
    assert code == 2
    assert "OPENAI_API_KEY" in err and "Traceback" not in err


async def test_corrupt_database_is_reported_clearly(tmp_path):
    (tmp_path / "console.db").write_bytes(b"this is not a database" * 100)
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        code, _, err = await _console(tmp_path, "hi\n", env)
    assert code == 4
    assert "console.db" in err and "Traceback" not in err


async def test_console_commands_and_empty_lines(tmp_path):
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        code, out, _ = await _console(tmp_path, "\n   \n/codebot limits\n", env)
    assert code == 0
    assert "timeout" in out
    assert fake.agent_requests == []
