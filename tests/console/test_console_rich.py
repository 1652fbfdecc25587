"""`codebot console` on a terminal (a real pseudo-terminal) has colour and a spinner; piped it stays plain."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from bot.console.rich_view import rich_render
from core.types import AnswerReply, CodeReply, NoticeReply
from tests.console.test_console import _console, _env
from tests.fakes.openai_fake import FakeOpenAI

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SPINNER = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # Rich's "dots" frames
CODE = "import math\nresult = math.sqrt(2)"


SPINNING = re.compile(f"[{''.join(sorted(SPINNER))}] [a-z][^…\n]*…")  # a spinner frame and its label


def plain_words(text: str) -> str:
    """What a terminal shows as text: escape sequences and spinner frames removed, spacing folded."""
    text = SPINNING.sub(" ", ANSI.sub("", text.replace("\r", "\n")))
    return " ".join(text.split())


async def test_piped_output_has_no_colour_codes_or_spinner(tmp_path):
    async with FakeOpenAI() as fake:
        fake.enqueue_tool_call(CODE)
        fake.enqueue_text("About 1.41421.")
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url, TERM="xterm-256color")
        code, out, err = await _console(tmp_path, "sqrt of 2\n", env)
    assert code == 0, err
    assert "\x1b" not in out and not SPINNER & set(out + err)
    assert "[step 1] code:\n    ```python\n    import math\n    result = math.sqrt(2)\n    ```\n" in out
    assert "[step 1] safety review: allowed" in out and "1.4142135623730951" in out
    assert out.rstrip().endswith("answer: About 1.41421.")


def _run_in_pty(tmp_path: Path, env: dict[str, str], typed: bytes) -> tuple[int, bytes]:
    """Run the console with stdin and stdout on a pseudo-terminal; return its exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the console on the pty
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "bot", "console"], env)
    os.write(fd, typed)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 90
    sent_eof = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
        seen = b"".join(chunks)
        if not sent_eof and b"answer:" in seen and b"> " in seen.rsplit(b"answer:", 1)[1]:
            os.write(fd, b"\x04")  # Ctrl-D at the next prompt: end of input
            sent_eof = True
    else:
        os.kill(pid, signal.SIGKILL)  # never leave the child behind
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


async def test_on_a_terminal_the_console_is_coloured_with_a_spinner(tmp_path):
    async with FakeOpenAI() as fake:
        fake.enqueue_delay(1.5)  # the model thinks a while: the spinner shows meanwhile
        fake.enqueue_tool_call(CODE)
        fake.enqueue_text("About 1.41421.")
        env = _env(tmp_path, OPENAI_BASE_URL=fake.base_url, TERM="xterm-256color", COLUMNS="100")
        env.pop("NO_COLOR", None)
        code, raw = await asyncio.wait_for(asyncio.to_thread(_run_in_pty, tmp_path, env, b"sqrt of 2\n"), 120)
    out = raw.decode(errors="replace")
    assert code == 0, out
    assert re.search(r"\x1b\[[0-9;]*3[0-9]m|\x1b\[[0-9;]*38;5;\d+m|\x1b\[1m", out), "no colour codes"
    assert SPINNER & set(out), "no spinner frames"
    words = plain_words(out)
    for expected in (
        "[step 1] code:",
        "import math",
        "result = math.sqrt(2)",
        "[step 1] safety review: allowed",
    ):
        assert expected in words
    assert "1.4142135623730951" in words and "answer: About 1.41421." in words


def test_untrusted_text_cannot_style_or_drive_the_terminal():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    for reply in (
        AnswerReply("[bold red]fake[/] \x1b]8;;https://evil.example\x07link"),
        NoticeReply("info", "[link=https://evil.example]x[/link]"),
        CodeReply(1, "print('\x1b[2J')  # [red]x[/]"),
    ):
        console.print(rich_render(reply))
    out = buf.getvalue()
    assert "[bold red]fake[/]" in out and "[link=https://evil.example]" in out  # shown, not applied
    assert "\x1b]8;" not in out and "\x1b[2J" not in out  # no hyperlink, no screen clear
    assert "\\x1b]8;;https://evil.example\\x07" in ANSI.sub("", out)
