"""Replies -> Discord messages: markdown, mention neutralising, 2000-char splitting, file packing. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.discord.answer import answer_markdown
from core.outcome import view
from core.types import (
    AnswerReply,
    CodeReply,
    CommandResult,
    NoticeReply,
    Progress,
    Reply,
    ResultReply,
    StepView,
    VerdictReply,
)
from sandbox.types import RunResult

MAX_CHARS = 2000  # Discord's content limit per message
MAX_FILES = 10  # attachments per message
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # bytes; boosted guilds allow more
MAX_ANSWER_MESSAGES = 4  # longer answers are attached in full instead of flooding the thread
ZWSP = "\u200b"

_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_ID_MENTION = re.compile(r"<(@[!&]?|#|/)(?=[\w:-]*\d>)")
_FENCE_RUN = re.compile(r"`{3,}")

_STATUS = {
    Progress.QUEUED: "⏳ Queued",
    Progress.THINKING: "🤔 Thinking…",
    Progress.REVIEWING: "🔎 Reviewing the code…",
    Progress.RUNNING: "⚙️ Running the code…",
    Progress.DONE: "✅ Done",
    Progress.FAILED: "❌ Failed",
}
_NOTICE_ICON = {"error": "⚠️", "limit": "⛔", "refused": "🚫", "queued": "⏳", "info": "ℹ️", "abandoned": "⚠️"}


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes


@dataclass(frozen=True)
class Outgoing:
    """One Discord message: content within MAX_CHARS and at most MAX_FILES attachments."""

    content: str
    files: tuple[Attachment, ...] = ()


def neutralize(text: str) -> str:
    """Break @everyone/@here and <@id>/<@&id>/<#id> so no text can ever ping or link-mention."""
    text = _MASS_MENTION.sub(lambda m: "@" + ZWSP + m.group(1), text)
    return _ID_MENTION.sub(lambda m: "<" + m.group(1) + ZWSP, text)


def code_block(body: str, lang: str = "", limit: int = MAX_CHARS, *, keep_tail: bool = False) -> str:
    """Wrap untrusted text in a fenced block that nothing inside can close, at most `limit` chars.

    The body is escaped first and clipped second, so the fences are never what gets cut: text that
    looks like the bot's own lines (a "Review: allowed" heading, a masked link) stays inside the block.
    """
    body = _FENCE_RUN.sub(lambda m: ZWSP.join(m.group()), neutralize(body)).rstrip()
    if not body.strip():
        body = " "
    room = max(limit - len(f"```{lang}\n\n```"), 1)
    return f"```{lang}\n{clip(body, room, keep_tail=keep_tail)}\n```"


def fences_balanced(text: str) -> bool:
    """True when every ``` opened in `text` is closed (fence runs inside blocks are broken up)."""
    return text.count("```") % 2 == 0


def clip_markdown(text: str, limit: int) -> str:
    """Shorten markdown to `limit` chars; a code block the cut leaves open is closed again."""
    if len(text) <= limit:
        return text
    cut = clip(text, limit - 4)
    return cut + "\n```" if not fences_balanced(cut) else cut


def clip(text: str, limit: int, *, keep_tail: bool = False) -> str:
    """Shorten to at most `limit` chars, marking the cut; keep_tail keeps both ends (tracebacks)."""
    if len(text) <= limit:
        return text
    if not keep_tail:
        return text[: max(limit - 1, 0)] + "…"
    marker = f"\n… {len(text) - limit + 40:,} chars cut …\n"
    head = max((limit - len(marker)) // 3, 0)
    tail = max(limit - len(marker) - head, 0)
    return text[:head] + marker + text[len(text) - tail :]


def render_status(state: Progress, detail: str = "") -> str:
    """Text of the status message edited in place."""
    text = _STATUS[state]
    return f"{text} · {clip(neutralize(detail), 200)}" if detail else text


def render_notice(notice: NoticeReply) -> str:
    return clip(f"{_NOTICE_ICON.get(notice.kind, 'ℹ️')} {neutralize(notice.text)}", MAX_CHARS)


DISCORD_HELP_NOTE = (
    "\n*On Discord:* `/codebot help|limits|usage|reset|files` for everyone; `/codebot-admin set` and "
    "`/codebot-admin audit` for members with *Manage Server*."
)


def render_command(result: CommandResult, name: str = "") -> str:
    """Command text for Discord (the core wrote it in Discord's syntax: see commands.DISCORD_SYNTAX)."""
    note = DISCORD_HELP_NOTE if name == "help" else ""
    return clip_markdown(neutralize(result.text), MAX_CHARS - len(note)) + note


def render_reply(reply: Reply, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> list[Outgoing]:
    """Render one core reply as one or more messages, each within Discord's limits, fences balanced."""
    return [_checked(out) for out in _render(reply, upload_limit)]


def _checked(out: Outgoing) -> Outgoing:
    # Last line of defence: Discord refuses a message over 2000 characters, and an open fence would
    # turn everything after it, or nothing at all, into code.
    if len(out.content) <= MAX_CHARS and fences_balanced(out.content) and out.content.strip():
        return out
    content = clip_markdown(out.content, MAX_CHARS)
    if not fences_balanced(content):
        content = content.replace("```", "`\u200b``")
    return Outgoing(content or "…", out.files)


def _render(reply: Reply, upload_limit: int) -> list[Outgoing]:
    if isinstance(reply, CodeReply):
        return [_code(reply)]
    if isinstance(reply, VerdictReply):
        return [Outgoing(_verdict(reply))]
    if isinstance(reply, ResultReply):
        return _result(reply.step, reply.result, upload_limit)
    if isinstance(reply, AnswerReply):
        return _answer(reply.text)
    return [Outgoing(render_notice(reply))]


def _code(reply: CodeReply) -> Outgoing:
    head = f"**Step {reply.step}** · code"
    code, files = _code_text(reply.step, reply.code, MAX_CHARS - len(head) - 1)
    return Outgoing(f"{head}\n{code}", tuple(files))


def _verdict(reply: VerdictReply) -> str:
    v = reply.verdict
    if v.mode == "off":
        head = "🛡️ **Review off** · the code runs without a safety review"
    elif v.allowed:
        head = f"🛡️ **Review: allowed** · risk {v.risk}"
    else:
        head = f"🚫 **Review: refused** · risk {v.risk}"
    if v.checks:
        head += f" · checks: {', '.join(v.checks)}"
    if v.cached:
        head += " (cached)"
    lines = [head]
    # One line per reason: a reviewer's newline must not start a line that looks like our own header.
    lines += [f"- {clip(neutralize(' '.join(r.split())), 300)}" for r in v.reasons[:10]]
    lines += [
        f"- line {f.line}: {clip(neutralize(' '.join(f.message.split())), 300)} (`{f.rule}`)"
        for f in v.findings[:10]
    ]
    return clip("\n".join(lines), MAX_CHARS)


def _result_head(step: int, r: RunResult) -> str:
    v = view(r)
    if v.status == "timeout":
        head = f"⏱️ **Timed out** after {v.took}"
    elif v.status == "killed":
        head = f"💥 **Stopped**: hit the {v.limit_name} after {v.took}"
    elif v.status == "error":
        head = f"❌ **Error** after {v.took} (exit {v.exit_code})"
    elif v.status == "exit":
        head = f"❌ **Exited with code {v.exit_code}** after {v.took}"
    else:
        head = f"✅ **Ran** in {v.took}"
    if v.truncated:
        head += " · output truncated at the limit"
    if v.isolation != "full":
        head += f" · ⚠️ isolation: {v.isolation}"
    return f"**Step {step}** · {head}"


_TITLES = {"stdout": "Output", "result": "result", "error": "Error", "stderr": "stderr"}


def _sections(r: RunResult) -> list[tuple[str, str, bool]]:
    """(title, body, keep_tail) for each non-empty part of the output."""
    return [(_TITLES[p.label], p.text, p.keep_tail) for p in view(r).parts]


def _result(step: int, r: RunResult, upload_limit: int) -> list[Outgoing]:
    text, files = _result_text(_result_head(step, r), step, r, MAX_CHARS)
    return pack_files(text, files, upload_limit)


def _result_text(head: str, step: int, r: RunResult, budget: int) -> tuple[str, list[Attachment]]:
    """The result under `head` within `budget` characters, and its files (the full output when cut)."""
    sections = _sections(r)
    full = "\n".join([head] + [f"**{t}**\n{code_block(b)}" for t, b, _ in sections])
    if not sections:
        full += "\n*(no output)*"
    files = [Attachment(f.name, f.data) for f in r.files]
    notes = list(_skipped_notes(r))
    if len(full) + sum(len(n) + 1 for n in notes) > budget:
        name = f"output-step{step}.txt"
        files.insert(0, Attachment(name, view(r).full_text.encode()))
        notes.insert(0, f"*(output shortened; the full output is attached as `{name}`)*")
        full = _shortened(head, sections, budget - sum(len(n) + 1 for n in notes))
    return "\n".join([full, *notes]), files


STEP_CODE_CHARS = 900  # of a step message's 2,000: longer code is shortened there and attached in full
STEP_VERDICT_CHARS = 500
_STEP_STATE = {
    "reviewing": "🔎 reviewing the code…",
    "running": "⚙️ running the code…",
    "stopped": "⚠️ stopped before a result",
}


def render_step(step: StepView, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> list[Outgoing]:
    """Render one step's message as it stands: its state line, the code, the verdict, the result.

    The message is posted with the code and edited as the step grows; this is the one function that lays
    it out (buttons for the step belong here too). Files that do not fit the message's attachment limits
    come as further messages after it.
    """
    state = _STEP_STATE.get(step.state)
    head = f"**Step {step.step}**" + (f" · {state}" if state else "")
    code, files = _code_text(step.step, step.code, STEP_CODE_CHARS)
    lines = [head, code]
    if step.verdict is not None:
        lines.append(clip(_verdict(VerdictReply(step.step, step.verdict)), STEP_VERDICT_CHARS))
    if step.result is not None:
        used = sum(len(x) + 1 for x in lines)
        run_head = _result_head(step.step, step.result).split(" · ", 1)[1]
        text, result_files = _result_text(run_head, step.step, step.result, MAX_CHARS - used)
        lines.append(text)
        files += result_files
    return [_checked(out) for out in pack_files("\n".join(lines), files, upload_limit)]


def _code_text(step: int, code: str, budget: int) -> tuple[str, list[Attachment]]:
    """The code as a block within `budget` characters; shortened, it is attached in full."""
    block = code_block(code, "py")
    if len(block) <= budget:
        return block, []
    name = f"step{step}.py"
    note = f"\n*(code shortened; the full code is attached as `{name}`)*"
    return code_block(code, "py", budget - len(note)) + note, [Attachment(name, code.encode())]


def _shortened(head: str, sections: list[tuple[str, str, bool]], budget: int) -> str:
    """Each section gets an equal share of what is left, clipped inside its own fences."""
    overhead = len(head) + sum(len(t) + 6 for t, _, _ in sections)
    each = max((budget - overhead) // max(len(sections), 1), 20)
    blocks = [f"**{t}**\n{code_block(b, limit=each, keep_tail=tail)}" for t, b, tail in sections]
    return clip_markdown("\n".join([head, *blocks]), budget)


def _skipped_notes(r: RunResult) -> list[str]:
    if not r.skipped_files:
        return []
    shown = (neutralize(n[:60].replace("`", "'")) for n in r.skipped_files[:10])
    names = ", ".join(f"`{n}`" for n in shown)
    more = len(r.skipped_files) - 10
    names += f" and {more:,} more" if more > 0 else ""
    return [f"*(not returned by the sandbox: {names})*"]


def pack_files(text: str, files: list[Attachment], upload_limit: int) -> list[Outgoing]:
    """Put the text and files into messages of at most MAX_FILES files and upload_limit bytes each."""
    too_big = [f for f in files if len(f.data) > upload_limit]
    if too_big:
        listed = ", ".join(f"`{neutralize(f.name)}` ({_size(len(f.data))})" for f in too_big[:10])
        note = clip(f"\n*(over Discord's {_size(upload_limit)} upload limit, not attached: {listed})*", 600)
        text = clip_markdown(text, MAX_CHARS - len(note)) + note
    batches: list[list[Attachment]] = [[]]
    used = 0
    for f in (f for f in files if len(f.data) <= upload_limit):
        if len(batches[-1]) >= MAX_FILES or used + len(f.data) > upload_limit:
            batches.append([])
            used = 0
        batches[-1].append(f)
        used += len(f.data)
    out = [Outgoing(clip_markdown(text, MAX_CHARS), tuple(batches[0]))]
    out += [Outgoing(f"*(more files, {i + 2}/{len(batches)})*", tuple(b)) for i, b in enumerate(batches[1:])]
    return out


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MB"


def _answer(text: str) -> list[Outgoing]:
    chunks = split_text(neutralize(answer_markdown(text)).strip() or "*(empty answer)*", MAX_CHARS)
    if len(chunks) <= MAX_ANSWER_MESSAGES:
        return [Outgoing(c) for c in chunks]
    kept = chunks[: MAX_ANSWER_MESSAGES - 1]
    note = "*(the answer is long; the full text is attached as `answer.md`)*"
    return [Outgoing(c) for c in kept] + [Outgoing(note, (Attachment("answer.md", text.encode()),))]


def split_text(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Split markdown at line boundaries into chunks <= limit, closing and reopening open code fences."""
    chunks: list[str] = []
    cur: list[str] = []
    fence: str | None = None  # the opening line of the fence we are inside, if any
    size = 0
    for line in _hard_wrap(text, limit - 12):
        reserve = 4 if fence or line.startswith("```") else 0
        if cur and size + len(line) + 1 + reserve > limit:
            chunks.append("\n".join(cur) + ("\n```" if fence else ""))
            cur, size = ([fence], len(fence) + 1) if fence else ([], 0)
        cur.append(line)
        size += len(line) + 1
        if line.lstrip().startswith("```"):
            fence = None if fence else line.strip()
    if cur:
        chunks.append("\n".join(cur) + ("\n```" if fence else ""))
    return [c for c in chunks if c.strip()]


def _hard_wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        while len(line) > width:
            lines.append(line[:width])
            line = line[width:]
        lines.append(line)
    return lines
