"""A thread's workspace through `codebot console` as a user runs it: a real bot process, the real
sandbox, the real store file, and a scripted fake model on loopback."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from tests.fakes.openai_fake import FakeOpenAI
from tests.process_env import process_env

CSV = "region,sales\nnorth,10\nsouth,30\neast,20\n"
READ = "import pandas as pd\ndf = pd.read_csv('sales.csv')\nresult = df['sales'].mean()"
WRITE = "with open('note.txt', 'w') as fh:\n    fh.write('written in turn 1')\nresult = 'ok'"
FOLLOW = "result = (int(df['sales'].sum()), open('note.txt').read())"


def _env(tmp_path: Path, base_url: str, **extra: str) -> dict[str, str]:
    return process_env(tmp_path, "console.db", OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-test", **extra)


async def _console(tmp_path: Path, env: dict[str, str], stdin: str, *args: str, thread: str = "demo") -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console", "--thread", thread, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 180)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _system(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


async def test_attached_csv_variables_and_files_carry_across_turns_and_a_restart(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text(CSV)
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, fake.base_url)
        fake.enqueue_tool_calls(READ)
        fake.enqueue_tool_call(WRITE)
        fake.enqueue_text("The mean of sales is 20.")
        fake.enqueue_tool_call(FOLLOW)
        fake.enqueue_text("Total 60.")
        out = await _console(tmp_path, env, "mean of sales?\nand the total?\n", "--attach", "sales.csv")
        assert "np.float64(20.0)" in out, out
        assert "(60, 'written in turn 1')" in out, out  # df and note.txt from turn 1
        first, later = fake.agent_requests[0], fake.agent_requests[3]
        assert "sales.csv (" in _system(first) and "region,sales" in _system(first)
        assert "instead of asking the user to paste data" in _system(first)
        assert "df: DataFrame" in _system(later) and "note.txt" in _system(later)

        fake.enqueue_tool_call(FOLLOW)  # a new bot process: the workspace comes from the store
        fake.enqueue_text("Still 60.")
        out = await _console(tmp_path, env, "again after a restart\n/codebot files\n")
        assert "(60, 'written in turn 1')" in out, out
        assert "sales.csv" in out and "note.txt" in out and "`df` (DataFrame)" in out

        fake.enqueue_tool_call(FOLLOW)
        fake.enqueue_text("Gone.")
        out = await _console(tmp_path, env, "/codebot reset\nand now?\n")
        assert "is cleared too" in out, out
        assert "NameError: name 'df' is not defined" in out, out
        assert "Variables kept" not in _system(fake.agent_requests[-2])


async def test_a_file_over_the_cap_is_refused_with_the_limit_named_and_the_bot_still_answers(
    tmp_path: Path,
) -> None:
    (tmp_path / "big.bin").write_bytes(b"\x00" * (2 * 1024 * 1024))
    (tmp_path / "small.csv").write_text(CSV)
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, fake.base_url, CODEBOT_LIMIT_FILE_SIZE="1")
        fake.enqueue_tool_call("import os\nresult = sorted(os.listdir('.'))")
        fake.enqueue_text("Only the small one.")
        stdin = "/attach big.bin\n/attach small.csv\nwhich files do you have?\n"
        out = await _console(tmp_path, env, stdin)
    assert "big.bin" in out and "1 MB limit per file (`file_size`)" in out, out
    assert "['small.csv']" in out, out
    assert "answer: Only the small one." in out


async def test_a_run_cannot_grow_the_workspace_past_its_cap(tmp_path: Path) -> None:
    grow = "open('a.bin', 'wb').write(b'a' * 700_000)\nopen('b.bin', 'wb').write(b'b' * 700_000)\nresult = 1"
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, fake.base_url, CODEBOT_LIMIT_THREAD_FILES="1")
        fake.enqueue_tool_call(grow)
        fake.enqueue_text("Wrote two files.")
        fake.enqueue_tool_call("import os\nresult = sorted(os.listdir('.'))")
        fake.enqueue_text("Listed.")
        out = await _console(tmp_path, env, "write two files\nlist them\n")
    assert "Not kept in this thread's workspace: `b.bin`" in out and "`thread_files`" in out, out
    assert "['a.bin']" in out, out
    tool_output = str(fake.agent_requests[1]["messages"])
    assert "not kept: b.bin" in tool_output


async def test_two_threads_never_see_each_others_files_or_variables(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text(CSV)
    probe = "import os\nresult = (sorted(os.listdir('.')), 'df' in globals())"
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, fake.base_url)
        fake.enqueue_tool_call(READ)
        fake.enqueue_text("20.")
        await _console(tmp_path, env, "mean?\n", "--attach", "sales.csv", thread="one")
        fake.enqueue_tool_call(probe)
        fake.enqueue_text("Nothing here.")
        out = await _console(tmp_path, env, "/codebot files\nwhat is here?\n", thread="two")
        assert "([], False)" in out, out
        assert "workspace is empty" in out
        assert "sales.csv" not in _system(fake.agent_requests[-2])
        fake.enqueue_tool_call(probe)
        fake.enqueue_text("Still there.")
        out = await _console(tmp_path, env, "and here?\n", thread="one")
        assert "(['sales.csv'], True)" in out, out
