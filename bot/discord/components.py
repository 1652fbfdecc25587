"""Buttons on the bot's Discord messages (Stop, Re-run, Show full output), persistent across restarts.

Each button is a `discord.ui.DynamicItem`: its custom_id (`cb:<op>:<ref>`, under Discord's 100
characters) carries everything needed, and the class is registered with the client at start-up, so a
button on a message posted by an earlier process still works. A custom_id comes back from the client
and is untrusted: the template only admits short references, and the core validates them and looks the
code up itself. The presser is answered ephemerally; the thread hears the outcome.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.events import thread_name
from bot.discord.interactions import conversation_key, interaction_author
from bot.discord.render import Outgoing
from bot.discord.status import NO_MENTIONS, SEND_ERRORS
from bot.outputs import FullOutputs
from core.commands import EXAMPLE_QUESTIONS
from core.control import step_ref
from core.service import EMPTY_TEXT
from core.types import Author, Incoming, NoticeReply, Reply, StepView, ThreadKey

if TYPE_CHECKING:
    from bot.discord.sink import DiscordSink, Target
    from bot.status import QuestionMarks
    from core.service import Codebot

# (target, key, event id, the message standing for the question) -> the sink and its question marks
SinkFactory = Callable[
    ["Target", ThreadKey, str, "discord.Message | None"], "tuple[DiscordSink, QuestionMarks | None]"
]

log = logging.getLogger(__name__)

TEMPLATE = r"cb:(?P<op>stop|rerun|full|ask):(?P<ref>[A-Za-z0-9._-]{1,80})"
LABELS = {"stop": "Stop", "rerun": "Re-run", "full": "Show full output", "ask": "Ask"}
STYLES = {"stop": discord.ButtonStyle.danger, "rerun": discord.ButtonStyle.secondary}
FULL_FILE_BYTES = 1 << 20  # what "Show full output" sends back at most (the thread has the whole file)
GONE_TEXT = "I no longer have that output in memory; the full output is attached above."


class ButtonActions:
    """What a press does; one per bot, bound into the registered DynamicItem class."""

    def __init__(
        self, core: Codebot, sink_for: Callable[[ThreadKey], DiscordSink], question_sink: SinkFactory
    ) -> None:
        self.core = core
        self.outputs = FullOutputs()
        self._sink_for = sink_for
        self._question_sink = question_sink
        self.item = _button_class(self)

    def register(self, client: discord.Client) -> None:
        client.add_dynamic_items(self.item)

    def view(self, *items: tuple[str, str]) -> discord.ui.View:
        """A view of buttons (op, ref); call `.stop()` after sending: the dynamic item dispatches."""
        view = discord.ui.View(timeout=None)
        for op, ref in items:
            view.add_item(self.item(op, ref))
        return view

    def examples_view(self) -> discord.ui.View:
        """The example questions as buttons; each carries only its index (see core.commands)."""
        return self.view(*(("ask", str(i)) for i in range(len(EXAMPLE_QUESTIONS))))

    async def pressed(self, interaction: discord.Interaction, op: str, ref: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        key, author = conversation_key(interaction), interaction_author(interaction)
        if op == "ask":
            await self._ask(interaction, key, author, ref)
            return
        if op == "full":
            await self._full(interaction, key, ref)
            return
        if op == "stop":
            result = await self.core.stop(key, ref, author)
        else:
            message_id = str(interaction.message.id) if interaction.message is not None else "unknown"
            sink = self._sink_for(key)
            result = await self.core.rerun(key, ref, author, sink, message_id, str(interaction.id))
        await _followup(interaction, result.text)

    async def _ask(self, interaction: discord.Interaction, key: ThreadKey, author: Author, ref: str) -> None:
        """An example question clicked: ask it as the clicker, in this thread or DM, or in a new thread."""
        from bot.discord.sink import ChannelTarget, NewThreadTarget  # the sink module imports this one

        if ref not in {str(i) for i in range(len(EXAMPLE_QUESTIONS))}:
            await _followup(interaction, "That button is not valid.")
            return
        question, channel = EXAMPLE_QUESTIONS[int(ref)], interaction.channel
        target: Target
        posted: discord.Message | None = None
        if interaction.guild_id is None or isinstance(channel, discord.Thread):
            target = ChannelTarget(channel)  # type: ignore[arg-type]
        else:
            try:
                posted = await channel.send(  # type: ignore[union-attr]
                    f"**{_plain(author.name or author.id)}** asked: *{question}*",
                    allowed_mentions=NO_MENTIONS,
                )
            except SEND_ERRORS as exc:
                log.info("could not post an example question: %s", exc)
                await _followup(interaction, "I could not post in this channel.")
                return
            target = NewThreadTarget(posted, thread_name(question))
            key = ThreadKey(key.platform, key.workspace, key.channel, str(posted.id))
        incoming = Incoming(key, author, question, f"ask-{interaction.id}")
        sink, marks = self._question_sink(target, key, incoming.event_id, posted)
        submitted = await self.core.submit(incoming, sink)
        if marks is not None:  # 👀, then ✅ / ❌ on the posted question, as on a typed one
            await marks.start(submitted.accepted)
        await _followup(
            interaction, f"Asking: {question}" if submitted.accepted else "I could not take that now."
        )

    async def _full(self, interaction: discord.Interaction, key: ThreadKey, ref: str) -> None:
        text = self.outputs.get(key, ref)
        if text is None:
            await _followup(interaction, GONE_TEXT)
            return
        data = text.encode()[:FULL_FILE_BYTES]
        file = discord.File(io.BytesIO(data), filename="full-output.txt")
        try:
            await interaction.followup.send(
                "The full output (only you can see this):",
                file=file,
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
        except SEND_ERRORS as exc:
            log.info("could not send the full output: %s", exc)


def _button_class(actions: ButtonActions) -> type[Any]:
    class CodebotButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
        def __init__(self, op: str, ref: str) -> None:
            label = LABELS[op]
            if op == "ask" and ref.isdigit() and int(ref) < len(EXAMPLE_QUESTIONS):
                label = EXAMPLE_QUESTIONS[int(ref)][:80]
            button: discord.ui.Button[Any] = discord.ui.Button(
                label=label,
                style=STYLES.get(op, discord.ButtonStyle.secondary),
                custom_id=f"cb:{op}:{ref}",
            )
            super().__init__(button)
            self.op, self.ref = op, ref

        @classmethod
        async def from_custom_id(
            cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
        ) -> CodebotButton:
            return cls(match["op"], match["ref"])

        async def callback(self, interaction: discord.Interaction) -> None:
            try:
                await actions.pressed(interaction, self.op, self.ref)
            except SEND_ERRORS as exc:  # the interaction expired: nothing more reaches the presser
                log.info("button %s: %s", self.op, exc)

    return CodebotButton


def _plain(name: str) -> str:
    """A display name shown in bold: no markdown or mention can come through."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(name))[:80]


async def _followup(interaction: discord.Interaction, text: str) -> None:
    try:
        await interaction.followup.send(text[:1900], ephemeral=True, allowed_mentions=NO_MENTIONS)
    except SEND_ERRORS as exc:
        log.info("could not answer a button press: %s", exc)


@dataclass
class StepButtons:
    """Per turn: the buttons on its messages, decided from what each message shows.

    A step message carries Stop while its step runs and Re-run / Show full output once its result is in
    (the same edits that show the step); a queue position's status message carries Stop until deleted.
    """

    actions: ButtonActions
    key: ThreadKey
    turn_ref: str  # the turn's event id (the question's message id); "" for a re-run

    def status_view(self) -> discord.ui.View | None:
        if not self.turn_ref or not re.fullmatch(r"[A-Za-z0-9._-]{1,80}", self.turn_ref):
            return None
        return self.actions.view(("stop", self.turn_ref))

    def notice_view(self, reply: Reply) -> discord.ui.View | None:
        """An empty mention is answered with the examples to click."""
        if isinstance(reply, NoticeReply) and reply.text == EMPTY_TEXT:
            return self.actions.examples_view()
        return None

    def step_view(self, step: StepView, outs: list[Outgoing]) -> discord.ui.View | None:
        """Stop while the step runs; Re-run (and Show full output when cut) once its result is in."""
        if step.result is None:
            return self.status_view() if step.open else None
        if not step.code:
            return None
        ref = step_ref(step.step, step.code)
        items = [("rerun", ref)]
        full = next((a for o in outs for a in o.files if a.name.startswith("output-step")), None)
        if full is not None:
            self.actions.outputs.put(self.key, ref, full.data.decode(errors="replace"))
            items.append(("full", ref))
        return self.actions.view(*items)
