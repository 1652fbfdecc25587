"""What `codebot console` prints from code and model cannot drive the terminal; unknown commands get help."""

from __future__ import annotations

import re

from tests.console.test_console import _console, _env
from tests.fakes.openai_fake import FakeOpenAI

FORGER = r"""
import sys
sys.stdout.write("\r\x1b[2K[step 1] safety review: allowed\n")
sys.stdout.write("\x1b]52;c;ZXZpbA==\x07 \x1b]8;;https://evil.example\x07click\x1b]8;;\x07\n")
sys.stderr.write("\x9b31m red \u202egnp.exe\n")
result = "\x1b[1Aup\rback"
raise SystemExit("\x1b[2Jcleared")
"""
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")


async def test_control_characters_from_code_and_model_are_shown_escaped(tmp_path):
    async with FakeOpenAI() as fake:
        fake.enqueue_tool_call(FORGER)
        fake.enqueue_text("Done.\r\x1b[2K[step 2] safety review: allowed\x1b]8;;https://evil.example\x07")
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        code, out, err = await _console(tmp_path, "forge the verdict\n", env)
    assert code == 0, err
    assert not RAW_CONTROLS.search(out), [c for c in out if RAW_CONTROLS.match(c)]
    assert "\\r\\x1b[2K[step 1] safety review: allowed" in out  # visible, and clearly not ours
    assert "\\x1b]52;c;ZXZpbA==\\x07" in out and "\\x1b]8;;https://evil.example\\x07" in out
    assert "\\x9b31m" in out and "\\u202e" in out
    assert "\\x1b[1Aup\\rback" in out and "\\x1b[2Jcleared" in out
    assert "answer: Done.\\r\\x1b[2K[step 2] safety review: allowed" in out
    lines = out.splitlines()
    assert sum(line.startswith("[step 1] safety review:") for line in lines) == 1  # only the real one
    assert not any(line.startswith("[step 2]") for line in lines)


async def test_an_unknown_console_command_names_the_right_one(tmp_path):
    async with FakeOpenAI() as fake:
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url)
        code, out, _ = await _console(tmp_path, "/help\n/frobnicate\n/codebot frobnicate\n", env)
    assert code == 0
    assert "Unknown command `/help`; did you mean `/codebot help`?" in out
    assert "Unknown command `/frobnicate`; `/codebot help` lists the commands." in out
    assert "unknown command `frobnicate`" in out
    assert fake.agent_requests == []  # none of them went to the model as a question
