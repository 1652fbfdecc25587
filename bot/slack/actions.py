"""Buttons on the bot's Slack messages (Stop, Re-run, Show full output) and their block_actions handlers.

The blocks are stateless: a button carries only a short reference (the turn's event id, or a step
number with a digest of its code), so a button still works after the bot restarts. Everything in a
block_actions payload is untrusted: the core validates the reference and looks the code up itself.
The presser is answered privately (ephemeral, via response_url) and the thread hears the outcome.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.outputs import FullOutputs
from bot.slack import events, markup
from bot.slack.admins import UserDirectory
from bot.slack.render import Block, RenderLimits, SlackMessage, section
from bot.slack.thread import SLACK_FAILURES, slack_error
from core import outcome
from core.commands import EXAMPLE_QUESTIONS
from core.control import step_ref
from core.service import EMPTY_TEXT
from core.types import Author, Incoming, NoticeReply, Progress, Reply, StepView, ThreadKey

if TYPE_CHECKING:
    from bot.slack.sink import SlackSink
    from core.service import Codebot

SinkFactory = Callable[[events.Target, Incoming], "SlackSink"]

log = logging.getLogger(__name__)

STOP, RERUN, FULL, ASK = "codebot_stop", "codebot_rerun", "codebot_full_output", "codebot_ask"
MAX_VALUE = 200  # what we put in a button value (Slack allows 2,000); longer values are refused back
MODAL_SECTIONS = 24  # fenced sections in the "Show full output" modal (Slack allows 100 blocks)
MODAL_SECTION_CHARS = 2900


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    """A Block Kit button; the label stays under Slack's 75 characters."""
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text[:75], "emoji": True},
        "action_id": action_id,
        "value": value[:MAX_VALUE],
    }
    if style:
        element["style"] = style
    return element


def actions(block_id: str, *elements: dict[str, Any]) -> Block:
    return {"type": "actions", "block_id": block_id[:255], "elements": list(elements)[:25]}


def examples_block() -> Block:
    """The example questions as buttons; each carries only its index (see core.commands)."""
    buttons = [button(q, f"{ASK}_{i}", str(i)) for i, q in enumerate(EXAMPLE_QUESTIONS)]
    return actions("codebot_examples", *buttons)


def help_args(args: dict[str, Any]) -> dict[str, Any]:
    """The `/codebot help` answer with the example questions to click under it."""
    return {**args, "blocks": [section(args["text"]), examples_block()]}


@dataclass
class StepButtons:
    """Per turn: the buttons on its messages, decided from what each message shows.

    A step message carries Stop while its step runs and Re-run / Show full output once its result is in
    (so a result costs no extra edit); the fallback status message carries Stop until it is deleted.
    """

    key: ThreadKey
    turn_ref: str  # the turn's event id, for Stop; "" when the turn cannot be stopped (a re-run)
    outputs: FullOutputs
    limits: RenderLimits

    def _stop(self) -> dict[str, Any] | None:
        if not self.turn_ref or len(self.turn_ref) > MAX_VALUE:
            return None
        return button("Stop", STOP, self.turn_ref, style="danger")

    def status(self, message: SlackMessage, state: Progress) -> SlackMessage:
        stop = self._stop()
        if state.final or stop is None:
            return message
        return _with_block(message, actions("codebot_status", stop), self.limits)

    def step(self, view: StepView, message: SlackMessage) -> SlackMessage:
        """The step message with its buttons: Stop while it runs, Re-run (+ full output) after."""
        if view.result is not None and view.code:
            ref = step_ref(view.step, view.code)
            elements = [button("Re-run", RERUN, ref)]
            if any(a.filename.startswith("output_step") for a in message.attachments):
                self.outputs.put(self.key, ref, outcome.view(view.result).full_text)
                elements.append(button("Show full output", FULL, ref))
            return _with_block(message, actions(f"codebot_step_{view.step}", *elements), self.limits)
        stop = self._stop()
        if view.open and stop is not None:
            return _with_block(message, actions(f"codebot_stop_{view.step}", stop), self.limits)
        return message

    def notice(self, reply: Reply, messages: tuple[SlackMessage, ...]) -> tuple[SlackMessage, ...]:
        """An empty mention is answered with the example questions to click."""
        if isinstance(reply, NoticeReply) and reply.text == EMPTY_TEXT and messages:
            return (*messages[:-1], _with_block(messages[-1], examples_block(), self.limits))
        return messages


def _with_block(message: SlackMessage, block: Block, limits: RenderLimits) -> SlackMessage:
    blocks = message.blocks[: limits.max_blocks - 1]
    return SlackMessage(message.text, (*blocks, block), message.attachments)


@dataclass(frozen=True)
class Pressed:
    """The parts of a block_actions payload we use, each bounded; None fields were missing."""

    key: ThreadKey
    user_id: str
    action_id: str
    value: str
    press_id: str  # action_ts: unique per press
    trigger_id: str
    message_ts: str  # the message the button is on
    thread_ts: str | None  # its thread, if it is in one


def parse_press(body: Mapping[str, Any]) -> Pressed | None:
    """Read one button press from a block_actions payload; None if it is not one we can act on.

    An ephemeral message (the `/codebot help` answer) comes without `message`: its ts and thread are
    in `container`.
    """
    acts = body.get("actions")
    user, channel, team = body.get("user") or {}, body.get("channel") or {}, body.get("team") or {}
    message, container = body.get("message") or {}, body.get("container") or {}
    if not isinstance(acts, list) or not acts or not isinstance(acts[0], dict):
        return None
    if not all(isinstance(x, dict) for x in (user, channel, message, team, container)):
        return None
    act = acts[0]
    ts = message.get("ts") or container.get("message_ts")
    fields = [str(x or "")[:300] for x in (user.get("id"), channel.get("id"), ts, team.get("id"))]
    if not all(fields):
        return None
    user_id, channel_id, ts, team_id = fields
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    thread = {"channel": channel_id, "ts": ts, "thread_ts": str(thread_ts)[:40] if thread_ts else None}
    key = events.thread_key(team_id, thread)
    stamp = str(act.get("action_ts") or "")[:40].replace(".", "-")
    value = str(act.get("value") or "")[: MAX_VALUE + 1]
    action_id, trigger = str(act.get("action_id", ""))[:255], str(body.get("trigger_id", ""))[:300]
    return Pressed(key, user_id, action_id, value, stamp, trigger, ts, thread["thread_ts"])


class ButtonHandlers:
    """Bolt listeners for the buttons: ack at once, then act and answer the presser privately."""

    def __init__(
        self,
        core: Codebot,
        users: UserDirectory,
        client: AsyncWebClient,
        sink_for: Callable[[ThreadKey], SlackSink],
        outputs: FullOutputs,
        question_sink: SinkFactory,
    ) -> None:
        self._core = core
        self._users = users
        self._client = client
        self._sink_for = sink_for
        self._outputs = outputs
        self._question_sink = question_sink

    def register(self, app: AsyncApp) -> None:
        app.action(STOP)(_on_press(self._stop))
        app.action(RERUN)(_on_press(self._rerun))
        app.action(FULL)(_on_press(self._full))
        app.action(re.compile(rf"^{ASK}_\d$"))(_on_press(self._ask))

    async def _ask(self, press: Pressed, respond: Any) -> None:
        """An example question clicked: ask it, as the clicker, in this thread (or a new one)."""
        if press.value not in {str(i) for i in range(len(EXAMPLE_QUESTIONS))}:
            return
        question = EXAMPLE_QUESTIONS[int(press.value)]
        author = await self._author(press)
        key, target = press.key, None
        if press.thread_ts or events.is_dm({"channel": key.channel}):
            target = events.Target(key.channel, press.thread_ts, press.message_ts)
        else:  # the ephemeral help answer in a channel: start a thread with the question
            target = await self._start_thread(key, author, question)
            if target is None:
                await _tell(respond, "I could not post in this channel.")
                return
            key = ThreadKey(key.platform, key.workspace, key.channel, target.message_ts)
        incoming = Incoming(key, author, question, f"ask:{key.channel}:{press.press_id}")
        sink = self._question_sink(target, incoming)
        submitted = await self._core.submit(incoming, sink)
        await sink.marks.start(submitted.accepted)
        if not submitted.accepted and submitted.reason != "duplicate":
            await _tell(respond, "I could not take that question right now; please try again.")

    async def _start_thread(self, key: ThreadKey, author: Author, question: str) -> events.Target | None:
        name = markup.prose(author.name or author.id)
        text = f"*{name}* asked: _{markup.prose(question)}_"
        try:
            resp = await self._client.chat_postMessage(channel=key.channel, text=text, unfurl_links=False)
        except SLACK_FAILURES as exc:
            log.info("could not post an example question: %s", slack_error(exc))
            return None
        ts = str(resp.get("ts", ""))
        return events.Target(key.channel, ts, ts) if ts else None

    async def _author(self, press: Pressed) -> Author:
        info = await self._users.lookup(press.user_id)
        return Author(info.id, info.name, info.is_admin)

    async def _stop(self, press: Pressed, respond: Any) -> None:
        result = await self._core.stop(press.key, press.value, await self._author(press))
        await _tell(respond, result.text)

    async def _rerun(self, press: Pressed, respond: Any) -> None:
        author = await self._author(press)
        sink = self._sink_for(press.key)
        press_id = press.press_id or "press"
        result = await self._core.rerun(press.key, press.value, author, sink, press.message_ts, press_id)
        await _tell(respond, result.text)

    async def _full(self, press: Pressed, respond: Any) -> None:
        text = self._outputs.get(press.key, press.value)
        if text is None:
            await _tell(respond, "I no longer have that output in memory; the full output is attached above.")
            return
        try:
            await self._client.views_open(trigger_id=press.trigger_id, view=output_view(text))
        except SLACK_FAILURES as exc:
            log.info("views.open failed: %s", slack_error(exc))
            await _tell(respond, "I could not open the output; the full output is attached above.")


def _on_press(handler: Callable[[Pressed, Any], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A Bolt listener (its arguments are injected by name) that acks at once, then hands a press we
    can act on to `handler`."""

    async def listener(ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: Any) -> None:
        await ack()
        press = parse_press(body)
        if press is not None:
            await handler(press, respond)

    return listener


def output_view(text: str) -> dict[str, Any]:
    """A modal showing the full output to the presser only, in fenced sections, bounded."""
    sections, cut = markup.fenced_sections(text, MODAL_SECTIONS * MODAL_SECTION_CHARS, MODAL_SECTION_CHARS)
    blocks: list[Block] = list(sections) or [section("_(no output)_")]
    if cut:
        blocks.append(section("_(longer still: the whole output is in the attached file)_"))
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Full output"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks,
    }


async def _tell(respond: Any, text: str) -> None:
    """Answer the presser only; a failure is logged (the press itself was acked)."""
    try:
        await respond(text=markup.clip(text, 2900), response_type="ephemeral", replace_original=False)
    except Exception as exc:
        log.info("could not answer a button press: %s", type(exc).__name__)
