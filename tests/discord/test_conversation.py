"""Conversations end to end: real discord.py over HTTP/WebSocket to a fake Discord, real core and sandbox."""

from __future__ import annotations

import json

from tests.discord.stack import discord_stack


def _model_saw(stack, text: str, index: int = -1) -> bool:
    return text in json.dumps(stack.llm.agent_requests[index]["messages"])


async def test_mention_creates_a_thread_and_posts_every_step_there_in_order(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call("import math\nresult = math.sqrt(2)")
        s.llm.enqueue_text("The square root of 2 is about 1.41421.")
        msg = await s.ask("what is the sqrt of 2?")
        await s.done(msg["id"])
        mid = msg["id"]
        [create] = s.fake.calls_to("POST", rf"/channels/{s.fake.channel_id}/messages/{mid}/threads")
        assert create.json["name"] == "what is the sqrt of 2?"
        assert create.json["auto_archive_duration"] == 1440
        await s.fake.wait_for("PUT", rf"/channels/\d+/messages/{mid}/reactions/✅/@me")
        calls = [c for c in s.fake.calls if "/reactions/" in c.path]
        reacted = [(c.method, c.path.split("/reactions/")[1]) for c in calls]
        assert reacted == [("PUT", "👀/@me"), ("DELETE", "👀/@me"), ("PUT", "✅/@me")], reacted
        assert s.fake.calls_to("POST", rf"/channels/{mid}/typing")
        # One message for the step and one for the answer: no status message, nothing left over.
        step, answer = s.live(mid)  # the thread's id is the question's id
        assert len(s.posts(mid)) == 2
        assert "```py\nimport math\nresult = math.sqrt(2)\n```" in step
        assert "allowed" in step and "1.4142135623730951" in step
        assert step.startswith("**Step 1**\n")  # its state line is gone once the result is in
        assert answer == "The square root of 2 is about 1.41421."
        first = s.posted(mid)[0]
        assert first.startswith("**Step 1** · 🔎")  # posted with the code while it was reviewed ...
        step_id = s.fake.live(mid)[0]["id"]  # ... and edited in place
        edits = s.fake.calls_to("PATCH", rf"/channels/{mid}/messages/{step_id}")
        assert len(edits) == 2 and edits[-1].json["content"] == step
        assert not any("Done" in c for c in s.posted(mid))
        assert not s.posts(s.fake.channel_id)  # nothing landed in the channel itself


async def test_follow_up_in_the_thread_continues_without_a_mention(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_tool_call("result = 6 * 7")
        s.llm.enqueue_text("It is 42.")
        first = await s.ask("what is six times seven")
        await s.done(first["id"])
        s.llm.enqueue_text("Doubled, that is 84.")
        await s.fake.send_message("and doubled?", s.alice, channel_id=int(first["id"]))
        await s.done(first["id"], turns=2)
        assert s.contents(first["id"])[-1] == "Doubled, that is 84."
        assert _model_saw(s, "what is six times seven") and _model_saw(s, "It is 42.")
        assert len(s.fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 1


async def test_threads_the_bot_does_not_own_need_a_mention(tmp_path):
    async with discord_stack(tmp_path) as s:
        tid = await s.fake.add_thread("people chatting", s.alice)
        await s.fake.send_message("just talking here", s.alice, channel_id=tid)
        await s.quiet()
        assert not s.llm.requests and not s.posts(tid)
        s.llm.enqueue_text("Hello from the thread.")
        await s.ask("say hello", channel_id=tid)  # a mention inside an existing thread answers there
        await s.done(tid)
        assert s.contents(tid)[-1] == "Hello from the thread."
        assert not s.fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")


async def test_direct_messages_are_one_conversation_per_dm(tmp_path):
    async with discord_stack(tmp_path) as s:
        dm = s.fake.new_id()
        s.llm.enqueue_text("Hi Alice, ask me anything.")
        await s.fake.send_message("hello there", s.alice, channel_id=dm, dm=True)
        await s.done(dm)
        s.llm.enqueue_text("You said hello.")
        await s.fake.send_message("what did I say first?", s.alice, channel_id=dm, dm=True)
        await s.done(dm, turns=2)
        assert s.contents(dm)[-1] == "You said hello."
        assert _model_saw(s, "hello there")
        assert not s.fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")


async def test_own_and_other_bots_messages_are_ignored(tmp_path):
    async with discord_stack(tmp_path) as s:
        assert s.fake.echo  # every post of the bot comes back as MESSAGE_CREATE, like real Discord
        s.llm.enqueue_text("Only once.")
        first = await s.ask("answer once")
        await s.done(first["id"])
        other_bot = s.fake.user("helperbot", bot=True)
        await s.fake.send_message(f"{s.mention()} run this", other_bot, mention_bot=True)
        await s.fake.send_message("me too", other_bot, channel_id=int(first["id"]))
        await s.quiet()
        assert len(s.llm.agent_requests) == 1
        assert len(s.fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 1


async def test_a_message_replayed_after_a_gateway_resume_runs_once(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_text("Answered once.")
        msg = await s.ask("what is 1 + 1")
        await s.done(msg["id"])
        await s.fake.reconnect(replay=[("MESSAGE_CREATE", msg)])
        await s.quiet()
        assert s.fake.resumes == 1 and s.fake.identifies == 1  # a real RESUME, not a new session
        assert len(s.llm.agent_requests) == 1
        assert len(s.fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 1
        assert s.contents(msg["id"]).count("Answered once.") == 1


async def test_identify_asks_for_message_content(tmp_path):
    async with discord_stack(tmp_path) as s:
        intents = s.fake.identify_payload["intents"]
        assert intents & (1 << 15)  # MESSAGE_CONTENT
        assert intents & (1 << 9) and intents & (1 << 12)  # guild messages, direct messages


async def test_a_follow_up_sent_while_the_first_answer_runs_is_answered_after_it(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_delay(0.5)
        s.llm.enqueue_text("First answer.")
        s.llm.enqueue_text("Second answer.")
        first = await s.ask("a slow first question")
        thread = first["id"]
        await s.fake.wait_for("POST", rf"/channels/{thread}/messages")  # the thread exists, no answer yet
        await s.fake.send_message("and a quick follow-up", s.alice, channel_id=int(thread))
        await s.done(thread, turns=2)
        answers = [t for t in s.contents(thread) if t.endswith("answer.")]
        assert answers == ["First answer.", "Second answer."]
        assert _model_saw(s, "First answer.")  # the follow-up ran after the first turn, with its history
