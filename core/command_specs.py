"""The `/codebot` commands described once, as data: each adapter maps them to its own syntax.

The core answers them (core/commands.py), help is written from this table, and the adapters register
them from it (Discord's slash-command tree, Slack's thread-link argument), so a command added here
reaches every platform and its help at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arg:
    name: str
    description: str


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str  # the arguments as help shows them, e.g. "<limit> <value>"
    summary: str  # one help line
    description: str  # for a platform's command picker (Discord allows 100 characters)
    args: tuple[Arg, ...] = ()
    admin: bool = False  # only admins may run it (who is an admin is decided by core.admin)
    refusal: str = ""  # what anyone else is told
    thread: bool = False  # acts on one conversation: the adapter must say which thread


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("help", "", "this message", "How to use codebot, and its commands and limits"),
    CommandSpec("limits", "", "this workspace's limits", "This workspace's limits"),
    CommandSpec(
        "set",
        "<limit> <value>",
        "change a limit (admins), e.g. `set timeout 30s`, `set channels #data`, `set memory default`",
        "Set a limit for this workspace",
        (Arg("name", "limit name, e.g. timeout"), Arg("value", "new value, e.g. 30s")),
        admin=True,
        refusal="Only workspace admins can change limits. `limits` shows the current values.",
    ),
    CommandSpec(
        "usage",
        "",
        "questions, runs, refusals, tokens and sandbox time, today and this week",
        "Runs, tokens and sandbox time used today and this week",
    ),
    CommandSpec(
        "reset",
        "",
        "forget this thread's history, files and variables (use it inside the thread)",
        "Forget this thread's conversation, files and variables (use it inside the thread)",
        thread=True,
    ),
    CommandSpec(
        "files",
        "",
        "this thread's files and kept variables",
        "This thread's files and kept variables (use it inside the thread)",
        thread=True,
    ),
    CommandSpec(
        "audit",
        "[id]",
        "latest code runs, or one run's code (admins)",
        "Latest code executions, or one run's code by id",
        (Arg("entry", "an audit id to show that run's code"),),  # optional: usage says "[id]"
        admin=True,
        refusal="Only workspace admins can see the audit log.",
    ),
)

BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}


@dataclass(frozen=True)
class Syntax:
    """How a platform's users type commands: the prefix for everyone's and for admins' commands."""

    user: str = "/codebot"
    admin: str = "/codebot"

    def of(self, spec: CommandSpec) -> str:
        """The command as a user types it, e.g. `/codebot-admin set <limit> <value>`."""
        words = (self.admin if spec.admin else self.user, spec.name, spec.usage)
        return " ".join(word for word in words if word)

    def heading(self) -> str:
        """How help introduces the command list."""
        if self.admin == self.user:
            return f"`{self.user} <command>`"
        return f"`{self.user} <command>`; admins' commands: `{self.admin} <command>`"


def thread_command(text: str) -> CommandSpec | None:
    """The command a mention inside a thread names on its own (`@codebot reset`), if any."""
    spec = BY_NAME.get(text.strip().lower())
    return spec if spec is not None and spec.thread else None
