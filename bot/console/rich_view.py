"""The console on a terminal: the same story as the plain text, in colour, with the code highlighted and a
spinner while the bot works (Rich). Used only when stdout is a TTY; piped output stays plain text.

Everything shown comes from the model or the sandbox and is untrusted: it is passed through
`escape_controls` first (as the plain renderer does) and only ever wrapped in `Text`/`Syntax` objects,
never interpreted as Rich markup, so no string can colour, link or move the cursor.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.status import Status
from rich.syntax import Syntax
from rich.text import Text

from bot.console.render import _answer, render_result, render_verdict
from core.text import escape_controls
from core.types import AnswerReply, CodeReply, NoticeReply, Progress, Reply, ResultReply, VerdictReply

_NOTICE_STYLES = {"error": "bold red", "limit": "yellow", "refused": "bold red", "abandoned": "yellow"}


def _lines(text: str, first_style: str) -> Text:
    """The plain rendering, its first line (the step's header) styled."""
    first, _, rest = escape_controls(text).partition("\n")
    out = Text(first, style=first_style)
    if rest:
        out.append("\n" + rest)
    return out


def rich_render(reply: Reply) -> RenderableType:
    """The Rich renderable for one reply; the words are those of the plain renderer."""
    match reply:
        case CodeReply(step=step, code=code):
            head = Text(f"[step {step}] code:", style="bold cyan")
            return Group(head, Syntax(escape_controls(code), "python", theme="ansi_dark", padding=(0, 4)))
        case VerdictReply(step=step, verdict=verdict):
            style = "bold green" if verdict.allowed else "bold red"
            return _lines(render_verdict(step, verdict), style)
        case ResultReply(step=step, result=result):
            return _lines(render_result(step, result), "bold green" if result.outcome == "ok" else "bold red")
        case AnswerReply(text=text):
            out = _lines(_answer(text), "")
            out.stylize("bold", 0, len("answer:"))
            return out
        case NoticeReply(kind=kind, text=text):
            return Text(escape_controls(f"({kind}) {text}"), style=_NOTICE_STYLES.get(kind, "dim"))
    raise TypeError(f"unknown reply {reply!r}")


class RichSink:
    """Prints replies in colour and shows the turn's state as a spinner that ends with the turn."""

    def __init__(self, out: TextIO, files_dir: Path) -> None:
        self.console = Console(file=out, force_terminal=True, highlight=False, emoji=False)
        self._files_dir = files_dir
        self._status: Status | None = None

    async def progress(self, state: Progress, detail: str = "") -> None:
        if state.final:
            self.stop()
            return
        label = Text(escape_controls(f"{state.value}{' ' + detail if detail else ''}…"), style="dim")
        if self._status is None:
            self._status = self.console.status(label, spinner="dots")
            self._status.start()
        else:
            self._status.update(label)

    async def post(self, reply: Reply) -> None:
        self.console.print(rich_render(reply))  # a running spinner stays below what is printed
        if isinstance(reply, ResultReply) and reply.files:
            from bot.console.app import save_files  # app imports this module

            for line in await asyncio.to_thread(save_files, reply, self._files_dir):
                self.console.print(Text(line))

    def stop(self) -> None:
        """End the spinner (the turn ended, or the console is closing)."""
        status, self._status = self._status, None
        if status is not None:
            status.stop()
