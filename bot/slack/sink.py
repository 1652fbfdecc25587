"""SlackSink: the core's ReplySink bound to one Slack thread.

A step is one message that grows (code, then the verdict, then the result), edited in place; the live
status is the thread's own status line (bot/slack/status.py); the answer is posted at the end. The
buttons ride on those messages (bot/slack/actions.py): Stop on a running step (and on the fallback
status message), Re-run / Show full output on a step once its result is in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.answer import SlackAnswer
from bot.slack.events import Target
from bot.slack.markup import escape
from bot.slack.render import (
    Attachment,
    RenderLimits,
    SlackMessage,
    name_list,
    render,
    render_step,
    section,
    within_limits,
)
from bot.slack.status import SlackStatus
from bot.slack.thread import SLACK_FAILURES, ThreadMessages, slack_error
from bot.status import Coalescer, QuestionMarks
from core.types import AnswerReply, CodeReply, NoticeReply, Progress, Reply, StepReply, StepView

if TYPE_CHECKING:
    from bot.slack.actions import StepButtons

log = logging.getLogger(__name__)


def slack_marks(client: AsyncWebClient, target: Target, *, started: bool = False) -> QuestionMarks:
    """The :eyes: -> :white_check_mark: / :x: reactions on the question of `target`."""

    async def add(name: str) -> None:
        await client.reactions_add(channel=target.channel, timestamp=target.message_ts, name=name)

    async def remove(name: str) -> None:
        await client.reactions_remove(channel=target.channel, timestamp=target.message_ts, name=name)

    return QuestionMarks(
        add,
        remove,
        errors=SLACK_FAILURES,
        working="eyes",
        done="white_check_mark",
        failed="x",
        started=started,
    )


@dataclass
class _StepMessage:
    view: StepView
    edits: Coalescer[StepView]
    ts: str | None = None
    uploaded: set[str] = field(default_factory=set)  # attachment file names already in the thread


class SlackSink:
    """Posts a turn's replies into one thread: one message per step, edited as the step goes."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        *,
        limits: RenderLimits | None = None,
        min_update_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        marks: QuestionMarks | None = None,
        native_status: bool = True,
        recipient: tuple[str, str] | None = None,
        buttons: StepButtons | None = None,
    ) -> None:
        self._client = client
        self._messages = ThreadMessages(client, target, "post")
        self._buttons = buttons
        self._target = target
        self._limits = limits or RenderLimits()
        self._interval = min_update_interval_s
        self._clock = clock
        self._status = SlackStatus(
            client,
            target,
            interval_s=min_update_interval_s,
            clock=clock,
            native=native_status,
            decorate=buttons.status if buttons is not None else None,
        )
        # Without marks from the adapter (a notice for an interrupted turn), :eyes: is assumed present.
        self._marks = marks or slack_marks(client, target, started=True)
        self._steps: dict[int, _StepMessage] = {}
        # The asker (team id, user id) is who Slack streams the answer to; without one it is updated.
        self._answer = SlackAnswer(
            client, target, self._limits, recipient=recipient, interval_s=min_update_interval_s, clock=clock
        )

    @property
    def marks(self) -> QuestionMarks:
        return self._marks

    async def progress(self, state: Progress, detail: str = "") -> None:
        """Show the turn's state in the thread's status; at the end, clear it and mark the question."""
        if not state.final:
            await self._status.update(state, detail)
            return
        await self._status.end()
        await self._close_steps()
        await self._answer.interrupt()  # after a good answer there is no draft left to interrupt
        await self._marks.finish(state is Progress.DONE)

    async def post(self, reply: Reply) -> None:
        """Post a reply in the thread, then upload its files (a failed upload is noted)."""
        if isinstance(reply, StepReply):
            await self._step(reply)
            return
        if isinstance(reply, AnswerReply) and await self._answer.finish(reply.text, self._upload):
            return
        ending = isinstance(reply, NoticeReply) and reply.ends_turn
        if ending:
            await self._answer.interrupt()
        messages = render(reply, self._limits)
        if self._buttons is not None:
            messages = self._buttons.notice(reply, messages)
        for message in messages:
            if await self._post_message(message) and message.attachments:
                await self._upload(message.attachments)
        if ending:
            await self._status.end()
            await self._close_steps()

    async def answer_draft(self, text: str) -> None:
        """Show the answer as the model writes it (streamed, or one message updated in place)."""
        await self._answer.draft(text)

    async def aclose(self) -> None:
        """Apply coalesced updates (status, steps) that are still waiting, then stop."""
        await self._status.flush()
        for step in self._steps.values():
            await step.edits.flush()

    # ---- steps ---------------------------------------------------------------------------------

    async def _step(self, reply: StepReply) -> None:
        step = self._steps.get(reply.step)
        if isinstance(reply, CodeReply) or step is None:  # the step's first message
            view = StepView(reply.step, reply.code if isinstance(reply, CodeReply) else "")
            step = self._new_step(view.grown(reply))
            await self._show_step(step, step.view)
            step.edits.mark_shown(step.view)
            return
        step.view = step.view.grown(reply)
        # A verdict that lets the code run is shown with the result when that comes within the interval
        # (one edit instead of two); a refusal or a result is shown at once.
        await step.edits.update(step.view, final=not step.view.open)

    def _new_step(self, view: StepView) -> _StepMessage:
        step = _StepMessage(view, Coalescer(lambda v: self._show_step(step, v), self._interval, self._clock))
        self._steps[view.step] = step
        return step

    async def _show_step(self, step: _StepMessage, view: StepView) -> None:
        message = render_step(view, self._limits)
        if self._buttons is not None:
            message = self._buttons.step(view, message)
        if step.ts is None:
            step.ts = await self._post_message(message)
        else:
            await self._messages.update(step.ts, message.text, message.blocks)
        new = tuple(a for a in message.attachments if a.filename not in step.uploaded)
        if new:
            step.uploaded.update(a.filename for a in new)
            await self._upload(new)

    async def _close_steps(self) -> None:
        """A step still waiting for its verdict or result when the turn ended says it stopped."""
        for step in self._steps.values():
            if step.view.open:
                step.view = replace(step.view, stopped=True)
                await step.edits.update(step.view, final=True)

    # ---- Web API -------------------------------------------------------------------------------

    async def _post_message(self, message: SlackMessage) -> str | None:
        """Post one message; return its ts (None when Slack refused it)."""
        return await self._messages.post(message.text, message.blocks, unfurl_links=False, unfurl_media=False)

    async def _upload(self, attachments: tuple[Attachment, ...]) -> None:
        uploads = [{"content": a.content, "filename": a.filename, "title": a.title} for a in attachments]
        try:
            await self._client.files_upload_v2(
                channel=self._target.channel, thread_ts=self._target.thread_ts, file_uploads=uploads
            )
        except SLACK_FAILURES as exc:
            names = name_list([a.filename for a in attachments], self._limits.names_chars)
            log.warning("slack upload failed in %s: %s", self._target.channel, slack_error(exc))
            error = escape(slack_error(exc))[:100]
            note = f":warning: Could not upload {names} ({error}); the text above is all I can show."
            message = SlackMessage(f"Could not upload {names}", (section(note),))
            await self._post_message(within_limits(message, self._limits))
