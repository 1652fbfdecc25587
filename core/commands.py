"""The `/codebot` commands (help, limits, set, usage, reset, files, audit) as platform-neutral text."""

from __future__ import annotations

import difflib
import time
from collections.abc import Awaitable, Callable

from core.limits import LimitError, LimitsEngine, spec_for
from core.limits.parse import display, range_text
from core.limits.render import WINDOWS_TEXT, limits_table, reference_table
from core.limits.spec import BY_NAME
from core.limits.timefmt import day_start, stamp, week_start
from core.store.base import AuditRecord, Store, UsageTotals, Workspace
from core.text import duration
from core.threadfiles.listing import OUTSIDE_THREAD_TEXT, files_text, reset_text
from core.types import CommandRequest, CommandResult

MAX_REPLY_CHARS = 1800  # under Discord's 2000 with room for the adapter's own framing
AUDIT_PAGE = 10
SUBCOMMANDS = ("help", "limits", "set", "usage", "reset", "files", "audit")

Handler = Callable[[CommandRequest, tuple[str, ...]], Awaitable[CommandResult]]

USAGE_LINES = (
    "`help` — this message",
    "`limits` — this workspace's limits",
    "`set <limit> <value>` — change a limit (admins), e.g. `set timeout 30s`, `set channels #data`, "
    "`set memory default`",
    "`usage` — questions, runs, refusals, tokens and sandbox time, today and this week",
    "`reset` — forget this thread's history, files and variables (use it inside the thread)",
    "`files` — this thread's files and kept variables",
    "`audit [id]` — latest code runs, or one run's code (admins)",
)


class Commands:
    """Answers `/codebot` commands; admins are platform admins plus the operator's admin ids."""

    def __init__(
        self,
        store: Store,
        limits: LimitsEngine,
        admin_ids: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits
        self._admin_ids = frozenset(admin_ids)
        self._clock = clock
        self._handlers: dict[str, Handler] = {
            "help": self._help,
            "limits": self._show_limits,
            "set": self._set,
            "usage": self._usage,
            "reset": self._reset,
            "files": self._files,
            "audit": self._audit,
        }

    async def handle(self, req: CommandRequest) -> CommandResult:
        """Run one command and return its reply, kept under MAX_REPLY_CHARS."""
        words = req.name.split()
        name = words[0].lower().lstrip("/") if words else "help"
        args = (*words[1:], *req.args)
        handler = self._handlers.get(name)
        if handler is None:
            return _fit(_unknown(name))
        return _fit(await handler(req, args))

    def _is_admin(self, req: CommandRequest) -> bool:
        return req.author.is_admin or req.author.id in self._admin_ids

    async def _help(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        text = "\n".join(
            (
                "*codebot* answers questions by writing Python, checking it and running it in a sandbox. "
                "Mention me in a channel; replies in the thread continue the conversation.",
                "*Commands* (`/codebot <command>`)",
                *USAGE_LINES,
                "*Limits* (`limits` shows their values and ranges)",
                f"```\n{reference_table()}\n```",
                WINDOWS_TEXT,
            )
        )
        return CommandResult(text)

    async def _show_limits(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        current = await self._limits.effective(_workspace(req))
        text = (
            "*Limits for this workspace* (`*` = set by an admin)\n"
            f"```\n{limits_table(current, self._limits.defaults)}\n```\n"
            "Admins change one with `set <limit> <value>`; `set <limit> default` restores the default."
        )
        return CommandResult(text)

    async def _set(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        if not self._is_admin(req):
            return CommandResult(
                "Only workspace admins can change limits. `limits` shows the current values.", ok=False
            )
        if not args:
            names = ", ".join(f"`{n}`" for n in BY_NAME)
            return CommandResult(
                f"`set` needs a limit and a value, e.g. `set timeout 30s`. Limits: {names}", False
            )
        try:
            if len(args) == 1:
                return await self._describe(req, args[0])
            text = await self._limits.set(_workspace(req), args[0], " ".join(args[1:]), req.author)
        except LimitError as exc:
            return CommandResult(str(exc), ok=False)
        return CommandResult(text)

    async def _describe(self, req: CommandRequest, name: str) -> CommandResult:
        spec = spec_for(name)
        defaults = self._limits.defaults
        current = (await self._limits.effective(_workspace(req))).value(spec.name)
        allowed = range_text(spec, defaults.ceiling(spec.name), defaults.safety_floor)
        default = display(spec, defaults.default(spec.name))
        return CommandResult(
            f"*{spec.name}* ({spec.description}) is `{display(spec, current)}`; allowed {allowed}, "
            f"default `{default}`. Change it with `set {spec.name} {spec.example}`."
        )

    async def _usage(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        ws, user = _workspace(req), req.author.id
        now = self._clock()
        today, week = day_start(now), week_start(now)
        columns = (
            await self._store.usage(ws, today),
            await self._store.usage(ws, week),
            await self._store.usage(ws, today, user),
            await self._store.usage(ws, week, user),
        )
        limits = await self._limits.effective(ws)
        window = await self._limits.window_usage(ws, user)
        now_line = (
            f"Right now: your runs in the last hour {window.user_runs_last_hour:,}/"
            f"{limits.user_runs_per_hour:,} · workspace runs in the last 24 h "
            f"{window.workspace_runs_last_day:,}/{limits.workspace_runs_per_day:,} · tokens today "
            f"{window.tokens_today:,}/{limits.tokens_per_day:,}"
        )
        text = f"*Usage* (UTC days; weeks start on Monday)\n```\n{_usage_table(columns)}\n```\n{now_line}"
        return CommandResult(text)

    async def _reset(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        if req.thread is None:
            return CommandResult(
                "`reset` forgets one conversation: run it inside the thread you want me to forget.", ok=False
            )
        removed = await self._store.reset_conversation(req.thread)
        cleared = reset_text(*await self._store.clear_workspace(req.thread))
        if not removed and not cleared:
            return CommandResult("This thread has no history to forget; the next question starts fresh.")
        return CommandResult(
            f"Forgot this thread's history ({removed} message{'s' if removed != 1 else ''}).{cleared} "
            "The next question here starts fresh."
        )

    async def _files(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        if req.thread is None:
            return CommandResult(OUTSIDE_THREAD_TEXT, ok=False)
        limits = await self._limits.effective(_workspace(req))
        return CommandResult(await files_text(self._store, req.thread, limits))

    async def _audit(self, req: CommandRequest, args: tuple[str, ...]) -> CommandResult:
        if not self._is_admin(req):
            return CommandResult("Only workspace admins can see the audit log.", ok=False)
        ws = _workspace(req)
        if not args:
            return _audit_list(await self._store.audit(ws, AUDIT_PAGE), older=False)
        if args[0].lower() == "before" and len(args) == 2 and _is_id(args[1]):
            return _audit_list(await self._store.audit(ws, AUDIT_PAGE, int(args[1].lstrip("#"))), older=True)
        if len(args) == 1 and _is_id(args[0]):
            record = await self._store.audit_entry(ws, int(args[0].lstrip("#")))
            if record is None:
                return CommandResult(f"No run `#{args[0].lstrip('#')}` in this workspace's audit log.", False)
            return _audit_detail(record)
        shown = " ".join(args)[:40].replace("`", "'")
        return CommandResult(
            f"`audit` takes a run id, e.g. `audit 12`, or `audit before 12` (got `{shown}`)", False
        )


def _workspace(req: CommandRequest) -> Workspace:
    return Workspace(req.platform, req.workspace)


def _unknown(name: str) -> CommandResult:
    shown = name[:40].replace("`", "'")
    close = difflib.get_close_matches(name, SUBCOMMANDS, n=1, cutoff=0.5)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return CommandResult(f"unknown command `{shown}`; {hint}try `help`", ok=False)


def _is_id(text: str) -> bool:
    digits = text.lstrip("#")
    return digits.isdigit() and len(digits) < 19


def _usage_table(columns: tuple[UsageTotals, ...]) -> str:
    rows = [
        ("", "ws today", "ws week", "you today", "you week"),
        ("questions", *(f"{c.questions:,}" for c in columns)),
        ("code runs", *(f"{c.runs:,}" for c in columns)),
        ("refusals", *(f"{c.refusals:,}" for c in columns)),
        ("tokens", *(f"{c.tokens:,}" for c in columns)),
        ("sandbox s", *(f"{c.sandbox_ms / 1000:,.1f}" for c in columns)),
    ]
    return "\n".join(r[0].ljust(10) + "".join(cell.rjust(11) for cell in r[1:]) for r in rows)


def _verdict(record: AuditRecord) -> str:
    return f"{'allowed' if record.allowed else 'refused'}/{record.risk}"


def _audit_list(records: list[AuditRecord], older: bool) -> CommandResult:
    if not records:
        return CommandResult("No older runs." if older else "No code has run in this workspace yet.")
    lines = ["*Latest code runs* (newest first; `audit <id>` shows one run's code)"]
    for r in records:
        took = duration(r.duration_ms)
        lines.append(f"`#{r.id}` {stamp(r.at)} · `{r.user_id}` · {_verdict(r)} · {r.outcome} · {took}")
    if len(records) == AUDIT_PAGE:
        lines.append(f"Older: `audit before {records[-1].id}`")
    return CommandResult("\n".join(lines))


def _audit_detail(r: AuditRecord) -> CommandResult:
    reasons = f" — {r.reasons}" if r.reasons else ""
    exit_text = "" if r.exit_code is None else f" · exit {r.exit_code}"
    head = (
        f"*Run #{r.id}* · {stamp(r.at)} · by `{r.user_id}` in `{r.key.channel}` · step {r.step}\n"
        f"*Verdict:* {_verdict(r)}{reasons}\n"
        f"*Outcome:* {r.outcome}{exit_text} · {duration(r.duration_ms)}\n"
    )
    room = MAX_REPLY_CHARS - len(head) - 80
    code = r.code.replace("```", "`\u200b``")  # a code fence inside the code must not end the block
    if len(code) > room:
        code = code[: max(room, 0)] + "\n…"
        head += "_(code truncated; `codebot admin audit` exports it in full)_\n"
    return CommandResult(f"{head}```python\n{code}\n```")


def _fit(result: CommandResult) -> CommandResult:
    """Keep a reply under MAX_REPLY_CHARS without leaving a code block open."""
    text = result.text
    if len(text) <= MAX_REPLY_CHARS:
        return result
    cut = text[: MAX_REPLY_CHARS - 40]
    if cut.count("```") % 2:
        cut += "\n```"
    return CommandResult(cut + "\n_(truncated)_", ok=result.ok, ephemeral=result.ephemeral)
