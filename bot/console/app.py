"""`codebot console`: chat with the bot in a terminal or through piped stdin."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bot.console.files import ConsoleFetcher, local_file
from bot.console.render import render
from bot.console.rich_view import RichSink
from core.command_specs import BY_NAME as COMMANDS_BY_NAME
from core.service import Codebot
from core.text import escape_controls
from core.types import (
    Author,
    CommandRequest,
    Incoming,
    IncomingFile,
    Progress,
    Reply,
    ResultReply,
    ThreadKey,
)

BANNER = (
    "codebot console: ask a question; `/attach PATH` adds a file to the next one; `/codebot help` lists "
    "commands; Ctrl-D or Ctrl-C quits."
)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_COMMANDISH = re.compile(r"/[A-Za-z][\w-]{0,39}")  # "/help": meant as a command, not a question


def unknown_command_text(word: str) -> str:
    """Directions for a line like `/help` that looks like a command the console does not have."""
    name = word.lstrip("/").lower()
    hint = f"did you mean `/codebot {name}`? " if name in COMMANDS_BY_NAME else ""
    return f"Unknown command `{word}`; {hint}`/codebot help` lists the commands."


class ConsoleSink:
    """Print replies to a stream and save returned files into a folder."""

    def __init__(self, out: TextIO, files_dir: Path, show_progress: bool) -> None:
        self._out = out
        self._files_dir = files_dir
        self._show_progress = show_progress

    async def progress(self, state: Progress, detail: str = "") -> None:
        if self._show_progress and state not in (Progress.DONE,):
            line = f"… {state.value}{' ' + detail if detail else ''}"
            print(escape_controls(line), file=sys.stderr, flush=True)

    async def post(self, reply: Reply) -> None:
        print(render(reply), file=self._out, flush=True)
        if isinstance(reply, ResultReply) and reply.files:
            await asyncio.to_thread(self._save, reply)

    def _save(self, reply: ResultReply) -> None:
        for line in save_files(reply, self._files_dir):
            print(line, file=self._out, flush=True)


def save_files(reply: ResultReply, files_dir: Path) -> list[str]:
    """Save a step's returned files (blocking: call it on a thread); return the lines to show."""
    files_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for f in reply.files:
        path = files_dir / (_SAFE_NAME.sub("_", f.name) or "file")
        path.write_bytes(f.data)
        lines.append(escape_controls(f"  file: {f.name} ({f.size:,} bytes) saved to {path}"))
    return lines


class LineReader:
    """Read lines from a blocking stream on a daemon thread, so Ctrl-C never waits for Enter.

    (A read on the default executor would keep asyncio.run from returning until a line arrives.)
    """

    def __init__(self, stream: TextIO) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, args=(stream, loop), daemon=True, name="stdin").start()

    def _pump(self, stream: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while line := stream.readline():
                loop.call_soon_threadsafe(self._queue.put_nowait, line)
        except (OSError, ValueError):
            pass  # stream closed under us: same as EOF
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def next(self) -> str | None:
        """Return the next line, or None at end of input."""
        return await self._queue.get()


async def run_console(
    core: Codebot,
    *,
    thread: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    files_dir: Path = Path("codebot-output"),
    attach: Sequence[str | Path] = (),
) -> int:
    """Read questions until EOF; one conversation per session (or the named thread, resumed).

    Files named in `attach` or on an `/attach PATH` line go with the next question into the thread's
    workspace.
    """
    interactive = stdin.isatty()
    key = ThreadKey("console", "local", "console", thread or uuid.uuid4().hex[:12])
    me = Author("console", "you", is_admin=True)  # whoever holds the terminal is the operator
    # Colour and a spinner only on a terminal: piped output stays the plain text scripts parse.
    fancy = RichSink(stdout, files_dir) if stdout.isatty() else None
    sink: ConsoleSink | RichSink = fancy or ConsoleSink(stdout, files_dir, show_progress=interactive)
    if interactive:
        print(BANNER, f"(conversation `{key.thread}`)", file=stdout, flush=True)
    await core.recover(lambda _key: sink)
    pending: list[IncomingFile] = [local_file(p) for p in attach]
    fetcher = ConsoleFetcher()
    lines = LineReader(stdin)
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = await lines.next()
        if line is None:
            break
        text = line.strip()
        if not text:
            continue
        first = text.split(maxsplit=1)[0]
        if first == "/codebot":
            await _command(core, key, me, text, stdout)
            continue
        if first == "/attach":
            _attach(text, pending, stdout)
            continue
        if _COMMANDISH.fullmatch(first):
            print(escape_controls(unknown_command_text(first)), file=stdout, flush=True)
            continue
        incoming = Incoming(key, me, text, f"{key.thread}-{uuid.uuid4().hex}", tuple(pending))
        pending.clear()
        await core.submit(incoming, sink, fetcher)
        await core.wait_idle()
        if fancy is not None:
            fancy.stop()  # a turn that ended without a final state must not leave the spinner going
    return 0


def _attach(text: str, pending: list[IncomingFile], stdout: TextIO) -> None:
    path = text[len("/attach") :].strip().strip("'\"")
    if not path:
        line = "`/attach PATH` adds a local file to your next question."
    else:
        pending.append(local_file(path))
        line = f"{pending[-1].name} goes with your next question."
    print(escape_controls(line), file=stdout, flush=True)


async def _command(core: Codebot, key: ThreadKey, me: Author, text: str, stdout: TextIO) -> None:
    words = text.split()[1:]
    req = CommandRequest(
        platform=key.platform,
        workspace=key.workspace,
        channel=key.channel,
        author=me,
        name=words[0] if words else "help",
        args=tuple(words[1:]),
        thread=key,
    )
    result = await core.command(req)
    print(escape_controls(result.text), file=stdout, flush=True)  # audit shows stored code: keep it inert
