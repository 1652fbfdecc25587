"""Replies -> Slack messages (mrkdwn + Block Kit). Pure: escaping, neutralising, splitting, truncating."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.slack import markup
from bot.slack.markup import code_safe, escape, fenced_sections, prose
from core.outcome import view
from core.types import (
    AnswerReply,
    CodeReply,
    NoticeReply,
    Progress,
    Reply,
    ResultReply,
    StepView,
    VerdictReply,
)
from sandbox.types import RunResult

Block = dict[str, Any]


@dataclass(frozen=True)
class RenderLimits:
    """Slack's message limits, as caps with units. Defaults follow Slack's documented/practical limits."""

    section_chars: int = 3000  # Block Kit: text of one section block (and of one context element)
    max_blocks: int = 50  # Block Kit: blocks per message
    names_chars: int = 600  # a list of file names shown in a context line, before "… and N more"
    message_chars: int = 3900  # practical ceiling per message (msg_too_long appears near 4000)
    answer_messages: int = 3  # a long answer is split over at most this many messages, then attached
    fallback_chars: int = 300  # notification text sent alongside the blocks


@dataclass(frozen=True)
class Attachment:
    """A file to upload into the thread next to a message."""

    filename: str
    content: bytes
    title: str


@dataclass(frozen=True)
class SlackMessage:
    """One chat.postMessage worth of content; every string is already escaped and neutralised."""

    text: str
    blocks: tuple[Block, ...]
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


def section(text: str) -> Block:
    """Return a mrkdwn section block."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}


def context(text: str) -> Block:
    """Return a small-print context block."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text or " "}]}


def fallback(text: str, limits: RenderLimits) -> str:
    """Shorten prose for the notification text, escaped."""
    flat = " ".join(text.split())
    if len(flat) > limits.fallback_chars:
        flat = flat[: limits.fallback_chars - 1] + "…"
    return prose(flat)


def name_list(names: Sequence[str], budget: int, notes: Sequence[str] = ()) -> str:
    """Escaped, comma-separated names (each with its note) within `budget` characters, then "… N more"."""
    shown: list[str] = []
    used = 0
    for i, name in enumerate(names):
        note = f" ({notes[i]})" if i < len(notes) else ""
        # One name can't use the whole line up, nor close the inline code around it.
        shown_name = code_safe(prose(name[:200].replace("`", "'")))
        item = f"`{shown_name}`{note}"
        more = len(names) - i
        if shown and used + len(item) + 2 > budget - 20:
            return ", ".join(shown) + f" … and {more:,} more"
        shown.append(item)
        used += len(item) + 2
    return ", ".join(shown)


def render_code(reply: CodeReply, limits: RenderLimits) -> SlackMessage:
    """Render the code of one step as fenced sections, attaching it in full when it is too long."""
    blocks, cut = fenced_sections(reply.code, limits.message_chars, limits.section_chars)
    head = context(f":page_facing_up: *Code* · step {reply.step}")
    attachments: tuple[Attachment, ...] = ()
    if cut:
        name = f"code_step{reply.step}.py"
        attachments = (Attachment(name, reply.code.encode(), f"Code, step {reply.step}"),)
        blocks.append(context(f"Code truncated here; the full code is attached as `{name}`."))
    return SlackMessage(f"Code (step {reply.step})", (head, *blocks), attachments)


def render_verdict(reply: VerdictReply, limits: RenderLimits) -> SlackMessage:
    """Render the safety verdict: allowed or refused, risk, reasons and static findings."""
    v = reply.verdict
    icon, word = (":white_check_mark:", "Allowed") if v.allowed else (":no_entry:", "Refused")
    checks = ", ".join(v.checks) if v.checks else "none"
    head = f"{icon} *Safety review: {word}* · risk {escape(v.risk)} · checks: {escape(checks)}"
    if v.cached:
        head += " · cached"
    # One line per reason: a reviewer's newline must not start a line that looks like our own header.
    lines = [f"• {prose(_one_line(r))}" for r in v.reasons]
    lines += [f"• line {f.line}: {prose(_one_line(f.message))} (`{escape(f.rule)}`)" for f in v.findings]
    body = markup.clip("\n".join(lines), limits.section_chars)
    blocks = (section(head), section(body)) if body else (section(head),)
    return SlackMessage(fallback(f"Safety review: {word}, risk {v.risk}", limits), blocks)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def status_line(r: RunResult) -> str:
    """Summarise how a run ended, for a person (the facts come from core.outcome)."""
    v = view(r)
    if v.status == "timeout":
        line = f":stopwatch: *Timed out* · {v.took}"
    elif v.status == "killed":
        line = f":boom: *Killed* ({escape(v.killed_reason or '')} limit) · exit {v.exit_code} · {v.took}"
    elif not v.ok:
        line = f":x: *Failed* · exit {v.exit_code} · {v.took}"
    else:
        line = f":white_check_mark: *Ran OK* · exit 0 · {v.took}"
    return "".join([line, *(f" · {escape(note)}" for note in v.notes)])


def render_result(reply: ResultReply, limits: RenderLimits, room: int | None = None) -> SlackMessage:
    """Render a run's outcome: status, stdout, result, error; files and overflow become attachments.

    `room` is how many blocks the result may use (less than a message when it shares one with its code).
    """
    r = reply.result
    blocks: list[Block] = [section(status_line(r))]
    budget, cut = limits.message_chars, False
    for part in view(r).parts:
        blocks.append(context(f"*{part.label}*"))
        sections, part_cut = fenced_sections(part.text, max(budget, 200), limits.section_chars)
        blocks.extend(sections)
        budget -= sum(len(b["text"]["text"]) for b in sections)
        cut = cut or part_cut
    attachments = [Attachment(f.name, f.data, f.name) for f in r.files]
    if cut:
        name = f"output_step{reply.step}.txt"
        attachments.append(Attachment(name, view(r).full_text.encode(), f"Full output, step {reply.step}"))
        blocks.append(context(f"Output truncated here; the full output is attached as `{name}`."))
    notes = _file_notes(r, limits)
    room = limits.max_blocks if room is None else room
    blocks = blocks[: max(room - 2, 1)] + notes
    summary = re.sub(r":[a-z_]+:\s*", "", status_line(r)).replace("*", "")
    return SlackMessage(
        fallback(f"Result (step {reply.step}): {summary}", limits), tuple(blocks), tuple(attachments)
    )


def _file_notes(r: RunResult, limits: RenderLimits) -> list[Block]:
    """Context lines naming the returned and the skipped files, each within a bounded length."""
    notes = []
    if r.files:
        sizes = [markup.human_size(f.size) for f in r.files]
        names = name_list([f.name for f in r.files], limits.names_chars, sizes)
        notes.append(context(f":paperclip: Files: {names}"))
    if r.skipped_files:
        count = len(r.skipped_files)
        names = name_list(r.skipped_files, limits.names_chars)
        notes.append(context(f"Not returned ({count:,} over a limit or not regular files): {names}"))
    return notes


_STEP_STATE = {
    "reviewing": ":mag: Reviewing the code for safety…",
    "running": ":gear: Running the code in the sandbox…",
    "stopped": ":octagonal_sign: Stopped before this step produced a result",
}


def render_step(step: StepView, limits: RenderLimits | None = None) -> SlackMessage:
    """Render one step's message as it stands: code, then the verdict, then the result or a state line.

    The step's message is posted with the code and edited in place as the step grows; this is the one
    function that lays it out (buttons for the step belong here too).
    """
    limits = limits or RenderLimits()
    code = render_code(CodeReply(step.step, step.code), limits)
    blocks, attachments, text = list(code.blocks), list(code.attachments), code.text
    if step.verdict is not None:
        verdict = render_verdict(VerdictReply(step.step, step.verdict), limits)
        blocks += verdict.blocks
        text = verdict.text
    if step.result is not None:
        result = render_result(ResultReply(step.step, step.result), limits, limits.max_blocks - len(blocks))
        blocks += result.blocks
        attachments += result.attachments
        text = result.text
    elif step.state in _STEP_STATE:
        blocks.append(context(_STEP_STATE[step.state]))
    return within_limits(SlackMessage(text, tuple(blocks), tuple(attachments)), limits)


def render_answer(reply: AnswerReply, limits: RenderLimits) -> tuple[SlackMessage, ...]:
    """Render the final answer over one or a few messages; beyond that, attach it in full."""
    per_section = min(limits.section_chars, limits.message_chars)
    chunks, cut = markup.answer_chunks(reply.text, per_section * limits.answer_messages, per_section)
    messages: list[SlackMessage] = []
    blocks: list[Block] = []
    used = 0
    for chunk in chunks:  # group sections into messages of at most message_chars
        if blocks and (used + len(chunk) > limits.message_chars or len(blocks) >= limits.max_blocks - 1):
            messages.append(SlackMessage(fallback(reply.text, limits), tuple(blocks)))
            blocks, used = [], 0
        blocks.append(section(chunk))
        used += len(chunk)
    if blocks:
        messages.append(SlackMessage(fallback(reply.text, limits), tuple(blocks)))
    if not messages:
        messages.append(SlackMessage("(empty answer)", (section("_(empty answer)_"),)))
    if cut:
        note = context("Answer truncated here; the full answer is attached as `answer.md`.")
        last = messages[-1]
        attachment = Attachment("answer.md", reply.text.encode(), "Full answer")
        messages[-1] = SlackMessage(last.text, (*last.blocks, note), (attachment,))
    return tuple(messages)


_NOTICE_ICONS = {
    "error": ":warning:",
    "limit": ":no_entry_sign:",
    "refused": ":no_entry:",
    "queued": ":hourglass_flowing_sand:",
    "info": ":information_source:",
    "abandoned": ":octagonal_sign:",
}


def render_notice(reply: NoticeReply, limits: RenderLimits) -> SlackMessage:
    """Render a short notice (error, limit, queue position) as one line in the thread."""
    text = markup.clip(prose(reply.text), limits.section_chars - 40)
    return SlackMessage(
        fallback(reply.text, limits), (section(f"{_NOTICE_ICONS.get(reply.kind, '')} {text}"),)
    )


def render(reply: Reply, limits: RenderLimits | None = None) -> tuple[SlackMessage, ...]:
    """Render any reply into the messages to post, in order, each within Slack's limits."""
    limits = limits or RenderLimits()
    return tuple(within_limits(m, limits) for m in _render(reply, limits))


def within_limits(message: SlackMessage, limits: RenderLimits) -> SlackMessage:
    """Last line of defence: Slack refuses a whole message (invalid_blocks) for one text too long."""
    blocks = [_fit_block(b, limits.section_chars) for b in message.blocks]
    if len(blocks) > limits.max_blocks:
        blocks = [*blocks[: limits.max_blocks - 1], context("_(the rest did not fit in one message)_")]
    text = markup.clip(message.text, limits.section_chars) or " "
    return SlackMessage(text, tuple(blocks), message.attachments)


def _fit_block(block: Block, limit: int) -> Block:
    if block.get("type") == "section" and "text" in block:
        return {**block, "text": _fit_text(block["text"], limit)}
    if block.get("type") == "context":
        return {**block, "elements": [_fit_text(e, limit) for e in block["elements"][:10]]}
    return block


def _fit_text(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    text = obj.get("text") or " "
    if len(text) > limit:
        fenced = text.startswith(markup.FENCE)
        text = markup.clip(text, limit - (4 if fenced else 0))
        if fenced and text.count(markup.FENCE) % 2:
            text += "\n" + markup.FENCE
    return {**obj, "text": text}


def _render(reply: Reply, limits: RenderLimits) -> tuple[SlackMessage, ...]:
    if isinstance(reply, CodeReply):
        return (render_code(reply, limits),)
    if isinstance(reply, VerdictReply):
        return (render_verdict(reply, limits),)
    if isinstance(reply, ResultReply):
        return (render_result(reply, limits),)
    if isinstance(reply, AnswerReply):
        return render_answer(reply, limits)
    return (render_notice(reply, limits),)


_PROGRESS = {
    Progress.QUEUED: ":hourglass_flowing_sand: Queued",
    Progress.THINKING: ":thinking_face: Thinking…",
    Progress.REVIEWING: ":mag: Reviewing the code for safety…",
    Progress.RUNNING: ":gear: Running the code in the sandbox…",
    Progress.DONE: ":white_check_mark: Done",
    Progress.FAILED: ":x: Failed",
}


def render_progress(state: Progress, detail: str = "") -> SlackMessage:
    """Render the one status message that is updated in place."""
    line = _PROGRESS[state]
    if detail:
        line += f" · {markup.clip(prose(detail), 500)}"
    plain = re.sub(r":[a-z_]+: ", "", line)
    return SlackMessage(plain, (context(line),))


def render_command_text(text: str, limit: int = 3000) -> str:
    """Render a command's result (light markdown) as safe mrkdwn."""
    return markup.clip(markup.to_mrkdwn(text), limit)
