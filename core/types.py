"""Frozen values that cross the bot/core boundary. No SDK objects live here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Literal

from core.command_specs import Syntax
from sandbox.types import OutputFile, RunResult


@dataclass(frozen=True)
class ThreadKey:
    """Identity of one conversation: a thread (or DM) on one platform and workspace."""

    platform: str
    workspace: str  # Slack team id, Discord guild id or "dm-<channel>" for a DM, "local" for the console
    channel: str
    thread: str  # Slack thread_ts, Discord thread id, DM channel id

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}:{self.thread}"


@dataclass(frozen=True)
class Author:
    id: str
    name: str = ""
    is_admin: bool = False  # platform admin; CODEBOT_ADMIN_IDS is added by the core


@dataclass(frozen=True)
class IncomingFile:
    """A file attached to a question, not yet downloaded.

    Everything here comes from the chat event and is untrusted: the core sanitises `name` and checks
    `size` before asking the adapter's FileFetcher (core/files_in.py) for the bytes, and the fetcher
    enforces the cap again while streaming because a server may lie about the size.
    """

    name: str  # as the user named it, unsanitised
    ref: str  # opaque to the core: Slack url_private_download, Discord attachment url, console path
    size: int | None = None  # size the platform declares, if any
    mimetype: str = ""


@dataclass(frozen=True)
class Incoming:
    """One question addressed to the bot, platform-neutral."""

    key: ThreadKey
    author: Author
    text: str  # mention stripped
    event_id: str  # platform event/message id used for de-duplication
    files: tuple[IncomingFile, ...] = ()  # attachments of this message, fetched by the turn


class Progress(enum.Enum):
    QUEUED = "queued"
    THINKING = "thinking"
    REVIEWING = "reviewing"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """The turn is over (the question gets its done or failed mark)."""
        return self in (Progress.DONE, Progress.FAILED)


RiskLevel = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class Finding:
    """One risky construct found by static analysis."""

    rule: str  # e.g. "process", "network", "eval", "env", "dunder", "ctypes", "fs-write"
    line: int
    message: str  # readable by a chat user


@dataclass(frozen=True)
class Verdict:
    """Safety review outcome for one piece of code."""

    allowed: bool
    risk: RiskLevel
    reasons: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    checks: tuple[str, ...] = ()  # which checks ran: "static", "llm"
    mode: str = "standard"  # strict / standard / off
    cached: bool = False


# ---- replies: what the core reports to a sink, in order -------------------------------------------


@dataclass(frozen=True)
class CodeReply:
    step: int
    code: str


@dataclass(frozen=True)
class VerdictReply:
    step: int
    verdict: Verdict


@dataclass(frozen=True)
class ResultReply:
    step: int
    result: RunResult

    @property
    def files(self) -> tuple[OutputFile, ...]:
        return self.result.files


StepState = Literal["reviewing", "running", "refused", "done", "stopped"]


@dataclass(frozen=True)
class StepView:
    """One step as its single message shows it so far: the code, then the verdict, then the result.

    Sinks assemble it from the CodeReply, VerdictReply and ResultReply of a step and edit the step's
    message in place each time it grows.
    """

    step: int
    code: str
    verdict: Verdict | None = None
    result: RunResult | None = None
    stopped: bool = False  # the turn ended before this step's result came (sandbox failure, deadline)

    @property
    def state(self) -> StepState:
        if self.result is not None:
            return "done"
        if self.verdict is not None and not self.verdict.allowed:
            return "refused"
        if self.stopped:
            return "stopped"
        return "reviewing" if self.verdict is None else "running"

    @property
    def open(self) -> bool:
        """The step still waits for its verdict or its result."""
        return self.state in ("reviewing", "running")

    def grown(self, reply: StepReply) -> StepView:
        """The step as it stands once `reply` (its verdict or result) arrived."""
        if isinstance(reply, VerdictReply):
            return replace(self, verdict=reply.verdict)
        if isinstance(reply, ResultReply):
            return replace(self, result=reply.result)
        return self


@dataclass(frozen=True)
class AnswerReply:
    text: str


NoticeKind = Literal["error", "limit", "refused", "queued", "info", "abandoned"]


@dataclass(frozen=True)
class NoticeReply:
    """A short message for the user that is not an answer: an error, a limit, a queue position."""

    kind: NoticeKind
    text: str

    @property
    def ends_turn(self) -> bool:
        """The turn may stop after this notice without a final progress state."""
        return self.kind in ("error", "abandoned")


StepReply = CodeReply | VerdictReply | ResultReply  # the replies that make up one step's message
Reply = StepReply | AnswerReply | NoticeReply


# ---- commands (/codebot ...) ----------------------------------------------------------------------


@dataclass(frozen=True)
class CommandRequest:
    """A `/codebot <name> <args>` invocation, platform-neutral."""

    platform: str
    workspace: str
    channel: str
    author: Author
    name: str  # help, limits, set, usage, reset, audit (core/command_specs.py)
    args: tuple[str, ...] = ()
    thread: ThreadKey | None = None  # set when invoked inside a conversation thread
    syntax: Syntax = field(default_factory=Syntax)  # how this platform's users type commands (help, hints)
    reply_limit: int = 3000  # characters the platform shows in one reply (Discord: 2,000)


@dataclass(frozen=True)
class CommandResult:
    text: str  # plain text with light markdown (*bold*, `code`); adapters render it
    ok: bool = True
    ephemeral: bool = True


@dataclass(frozen=True)
class Submitted:
    """What `Codebot.submit` tells the adapter straight away."""

    accepted: bool
    reason: str = ""  # "duplicate", "empty", "too-long", "channel-not-allowed", ...
    notices: tuple[NoticeReply, ...] = ()
