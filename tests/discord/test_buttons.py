"""Stop, Re-run and Show full output on Discord: real discord.py components against the fake, real core.

The restart test runs the bot as a real process twice: a button posted by the first process is pressed
after the second has started, and works (persistent DynamicItem components).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from bot.discord.components import ButtonActions, _button_class
from core.commands import EXAMPLE_QUESTIONS
from tests.discord.stack import DiscordStack, discord_stack
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.discord_limits import component_problems
from tests.fakes.openai_fake import FakeOpenAI
from tests.process_env import process_env

REPO = Path(__file__).resolve().parents[2]
CODE = "print(6 * 7)"
EPHEMERAL = 64


def with_button(fake: FakeDiscord, channel_id: int | str, op: str) -> list[tuple[int, str]]:
    """(message id, custom_id) of the bot's messages in a channel showing a button `cb:<op>:...` now."""
    found = []
    for mid, msg in fake.messages.items():
        if msg["channel_id"] == str(channel_id):
            found += [(mid, c) for c in fake.buttons(mid) if c.startswith(f"cb:{op}:")]
    return sorted(found)


async def answer(fake: FakeDiscord, payload: dict[str, Any]) -> tuple[str, Any]:
    """The ephemeral follow-up the presser got (after the deferred response): its text and the call."""
    token = payload["token"]
    deferred = await fake.wait_for_call(lambda c: c.path.endswith(f"/{token}/callback"), within_s=60)
    assert deferred.json["type"] == 5 and deferred.json["data"]["flags"] == EPHEMERAL
    call = await fake.wait_for_call(
        lambda c: c.method == "POST" and c.path.endswith(f"/{token}"), within_s=60
    )
    assert call.json["flags"] & EPHEMERAL
    return call.json["content"], call


async def answered(s: DiscordStack, code: str = CODE) -> tuple[int, tuple[int, str]]:
    s.llm.enqueue_tool_call(code)
    s.llm.enqueue_text("It is 42.")
    question = await s.ask("what is 6*7")
    thread = int(question["id"])
    await s.done(thread)
    [result] = with_button(s.fake, thread, "rerun")
    return thread, result


async def test_rerun_by_the_asker_and_an_admin_others_refused(tmp_path):
    async with discord_stack(tmp_path) as s:
        thread, (mid, custom_id) = await answered(s)
        assert not with_button(s.fake, thread, "full")  # nothing was cut
        bob = s.fake.user("bob")
        text, _ = await answer(s.fake, await s.fake.press(mid, custom_id, user=bob))
        assert "Only the person who asked" in text
        text, _ = await answer(s.fake, await s.fake.press(mid, custom_id, user=s.alice))
        assert "Running step 1 again" in text
        await s.fake.wait_until(lambda: len(with_button(s.fake, thread, "rerun")) == 2, within_s=60)
        await s.core.wait_idle(60)
        assert any("Running step 1 again for alice" in c for c in s.contents(thread))
        text, _ = await answer(s.fake, await s.fake.press(mid, custom_id, user=s.alice))
        assert "already re-run" in text
        newer_mid, newer_id = with_button(s.fake, thread, "rerun")[-1]
        mod = s.fake.user("mod")
        text, _ = await answer(s.fake, await s.fake.press(newer_mid, newer_id, user=mod, manager=True))
        assert "Running step 1 again" in text
        await s.fake.wait_until(lambda: len(with_button(s.fake, thread, "rerun")) == 3, within_s=60)
        await s.core.wait_idle(60)


def test_the_fake_refuses_components_discord_refuses_and_accepts_ours():
    ok_row = {
        "type": 1,
        "components": [{"type": 2, "style": 2, "label": "Re-run", "custom_id": "cb:rerun:1.ab"}],
    }
    assert component_problems([ok_row]) == {}
    six = {
        "type": 1,
        "components": [{"type": 2, "style": 2, "label": "x", "custom_id": f"c{i}"} for i in range(6)],
    }
    long_id = {"type": 1, "components": [{"type": 2, "style": 2, "label": "x", "custom_id": "c" * 101}]}
    long_label = {"type": 1, "components": [{"type": 2, "style": 2, "label": "x" * 81, "custom_id": "c"}]}
    for bad in ([six], [long_id], [long_label], [ok_row] * 6):
        assert component_problems(bad), bad
    # What discord.py sends for our buttons, with the longest references the templates admit.
    actions = ButtonActions.__new__(ButtonActions)
    actions.item = _button_class(actions)
    view = actions.view(("stop", "9" * 80), ("rerun", "999." + "f" * 16), ("full", "999." + "f" * 16))
    assert component_problems(view.to_components()) == {}
    view.stop()


async def test_stop_by_the_asker_ends_a_long_run(tmp_path):
    async with discord_stack(tmp_path, CODEBOT_LIMIT_TIMEOUT="60s") as s:
        s.llm.enqueue_tool_call("import time\nprint('go', flush=True)\ntime.sleep(55)")
        s.llm.enqueue_text("never")
        question = await s.ask("wait a minute")
        thread = int(question["id"])

        def running() -> list[tuple[int, str]]:
            return [
                (m, c)
                for m, c in with_button(s.fake, thread, "stop")
                if "running the code" in s.fake.messages[m]["content"]  # Stop is on the running step
            ]

        await s.fake.wait_until(lambda: bool(running()), within_s=60)
        [(mid, custom_id)] = running()
        text, _ = await answer(s.fake, await s.fake.press(mid, custom_id, user=s.fake.user("bob")))
        assert "Only the person who asked" in text
        text, _ = await answer(s.fake, await s.fake.press(mid, custom_id, user=s.alice))
        assert text == "Stopped."
        await s.core.wait_idle(30)
        assert any("Stopped by alice" in c for c in s.contents(thread))
        assert not with_button(s.fake, thread, "stop")  # the step's last edit took the button away
        assert "never" not in s.contents(thread)


async def test_show_full_output_sends_it_to_the_presser_only(tmp_path):
    async with discord_stack(tmp_path) as s:
        thread, _ = await answered(s, "for i in range(3000):\n    print('line', i)")
        [(mid, custom_id)] = with_button(s.fake, thread, "full")
        text, call = await answer(s.fake, await s.fake.press(mid, custom_id, user=s.alice))
        assert "only you" in text
        [(_, name, data)] = call.files
        assert name == "full-output.txt" and b"line 0\n" in data and b"line 2999\n" in data


# ---- a real bot process, restarted ------------------------------------------------------------------


def discord_environ(tmp_path: Path, fake: FakeDiscord, llm: FakeOpenAI) -> dict[str, str]:
    return process_env(
        tmp_path,
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="sk-test-not-a-real-key",
        CODEBOT_MODEL="openai/test-model",
        DISCORD_TOKEN=fake.token,
        DISCORD_API_URL=fake.api_base,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], fake: FakeDiscord):
    """`codebot discord` as a real process, until it has identified on the fake gateway."""
    identified = fake.identifies
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "discord",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip
    try:
        for _ in range(1200):  # the gateway handshake records no REST call, so wait_until can't see it
            if fake.identifies > identified or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert fake.identifies > identified, "the bot process did not connect to the gateway"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_a_button_from_before_a_restart_of_the_bot_process_works(tmp_path):
    fake = FakeDiscord()
    await fake.start()
    try:
        async with FakeOpenAI() as llm:
            env = discord_environ(tmp_path, fake, llm)
            alice = fake.user("alice")
            async with bot_process(env, fake):
                llm.enqueue_tool_call(CODE)
                llm.enqueue_text("It is 42.")
                question = await fake.send_message(
                    f"<@{fake.bot_user['id']}> what is 6*7", alice, mention_bot=True
                )
                thread = int(question["id"])
                await fake.wait_until(lambda: bool(with_button(fake, thread, "rerun")), within_s=90)
            [(mid, custom_id)] = with_button(fake, thread, "rerun")
            async with bot_process(env, fake):  # a new process: nothing in memory from the first one
                text, _ = await answer(fake, await fake.press(mid, custom_id, user=alice))
                assert "Running step 1 again" in text
                await fake.wait_until(lambda: len(with_button(fake, thread, "rerun")) == 2, within_s=90)
    finally:
        await fake.stop()
    assert not fake.refused, fake.refused


# ---- help that teaches ---------------------------------------------------------------------------


async def test_help_offers_example_questions_and_a_click_asks_one_in_a_new_thread(tmp_path):
    async with discord_stack(tmp_path) as s:
        payload = await s.fake.slash("codebot", "help", user=s.alice)
        token = payload["token"]
        call = await s.fake.wait_for_call(lambda c: c.path.endswith(f"/{token}/callback"), within_s=30)
        data = call.json["data"]
        labels = [b["label"] for row in data["components"] for b in row["components"]]
        assert labels == list(EXAMPLE_QUESTIONS) and data["flags"] == EPHEMERAL
        assert all(q in data["content"] for q in EXAMPLE_QUESTIONS)
        [help_message] = [
            m for m, msg in s.fake.messages.items() if msg["components"] and msg["flags"] == EPHEMERAL
        ]

        s.llm.enqueue_text("It is 1.41421356237309504880168872421.")
        text, _ = await answer(s.fake, await s.fake.press(help_message, "cb:ask:0", user=s.alice))
        assert text == f"Asking: {EXAMPLE_QUESTIONS[0]}"
        [asked] = await s.fake.wait_for("POST", rf"/channels/{s.fake.channel_id}/messages", within_s=30)
        assert "alice" in asked.json["content"] and EXAMPLE_QUESTIONS[0] in asked.json["content"]
        [thread] = await s.fake.wait_for("POST", r"/channels/\d+/messages/\d+/threads", within_s=30)
        thread_id = thread.path.split("/")[4]
        await s.done(thread_id)
        assert any("1.41421356237309504880168872421" in c for c in s.contents(thread_id))
        sent = json.dumps(s.llm.agent_requests[-1]["messages"], ensure_ascii=False)
        assert f"[alice] {EXAMPLE_QUESTIONS[0]}" in sent


async def test_an_empty_mention_offers_the_examples_to_click(tmp_path):
    async with discord_stack(tmp_path) as s:
        await s.ask("")
        [reply] = await s.fake.wait_for("POST", rf"/channels/{s.fake.channel_id}/messages", within_s=30)
        ids = [b["custom_id"] for row in reply.json["components"] for b in row["components"]]
        assert ids == ["cb:ask:0", "cb:ask:1", "cb:ask:2"]
        notice = next(m for m, msg in s.fake.messages.items() if s.fake.buttons(m) == ids)
        s.llm.enqueue_text("There are 2.")
        text, _ = await answer(s.fake, await s.fake.press(notice, "cb:ask:2", user=s.fake.user("dave")))
        assert text == f"Asking: {EXAMPLE_QUESTIONS[2]}"
        [thread] = await s.fake.wait_for("POST", r"/channels/\d+/messages/\d+/threads", within_s=30)
        await s.done(thread.path.split("/")[4])
        assert "[dave] " + EXAMPLE_QUESTIONS[2] in json.dumps(
            s.llm.agent_requests[-1]["messages"], ensure_ascii=False
        )
