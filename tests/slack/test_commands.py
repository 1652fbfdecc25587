"""The /codebot slash command over signed HTTP: ack within 3 s, admins, errors, reset, slow replies."""

from __future__ import annotations

import json

from tests.slack.payloads import mention
from tests.slack.stack import slack_stack


def ack_text(reply) -> str:
    assert reply.status == 200, reply.text
    body = json.loads(reply.text)
    assert body["response_type"] == "ephemeral"
    return body["text"]


async def test_admin_can_set_a_limit_and_others_cannot(tmp_path, slack):
    slack.admins.add("UADMIN")
    async with slack_stack(tmp_path, slack, CODEBOT_ADMIN_IDS="UOPS") as s:
        refused = await s.command("set timeout 5s", user="U123")
        assert "Only workspace admins" in ack_text(refused)
        assert refused.seconds < 3
        changed = ack_text(await s.command("set timeout 5s", user="UADMIN"))
        assert "timeout" in changed and "Only workspace admins" not in changed
        by_operator = ack_text(await s.command("set steps 2", user="UOPS"))  # CODEBOT_ADMIN_IDS
        assert "Only workspace admins" not in by_operator
        shown = ack_text(await s.command("limits", user="U123"))
        assert "5" in shown and "*Limits for this workspace*" in shown
    looked_up = [c.params["user"] for c in slack.calls_to("users.info")]
    assert looked_up.count("U123") == 1  # cached: two commands, one users.info call


async def test_out_of_range_value_names_the_allowed_range(tmp_path, slack):
    slack.admins.add("UADMIN")
    async with slack_stack(tmp_path, slack) as s:
        text = ack_text(await s.command("set timeout 99999h", user="UADMIN"))
        assert "timeout" in text and "Only workspace admins" not in text
        limits = ack_text(await s.command("limits"))
        assert "99999" not in limits


async def test_unknown_subcommand_and_help(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        unknown = ack_text(await s.command("frobnicate"))
        assert "frobnicate" in unknown and "help" in unknown
        help_text = ack_text(await s.command(""))
        assert "set &lt;limit&gt; &lt;value&gt;" in help_text  # escaped for mrkdwn, still readable


async def test_reset_by_thread_link_and_by_mention_in_the_thread(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.enqueue_text("remembered")
        root = "1700000010.000100"
        await s.event(mention("remember 42", ts=root))
        await s.slack.wait_for(lambda: "remembered" in s.thread("C1", root))
        await s.core.wait_idle(10)
        assert await s.core.has_conversation(s.bot_key("C1", root))
        bare = ack_text(await s.command("reset"))
        assert "Copy link" in bare and "@codebot reset" in bare
        link = f"https://fake.slack.com/archives/C1/p{root.replace('.', '')}"
        assert "Forgot this thread" in ack_text(await s.command(f"reset {link}"))
        assert not await s.core.has_conversation(s.bot_key("C1", root))

        s.llm.enqueue_text("fresh start")
        await s.event(mention("new question", ts=root.replace("10.", "11.")))
        root2 = root.replace("10.", "11.")
        await s.slack.wait_for(lambda: "fresh start" in s.thread("C1", root2))
        await s.core.wait_idle(10)
        asked = len(s.llm.agent_requests)
        await s.event(mention("reset", thread_ts=root2))
        await s.slack.wait_for(lambda: any("Forgot this thread" in t for t in s.thread("C1", root2)))
        assert len(s.llm.agent_requests) == asked  # `reset` is a command, not a question
        assert not await s.core.has_conversation(s.bot_key("C1", root2))


async def test_a_slow_command_is_acked_at_once_then_answered_via_response_url(tmp_path, slack):
    async with slack_stack(tmp_path, slack, ack_budget_s=0.0) as s:
        reply = await s.command("usage")
        assert "Working on it" in ack_text(reply) and reply.seconds < 3
        [later] = await slack.wait_for(lambda: slack.responses, timeout_s=5)
        assert later["response_type"] == "ephemeral" and "*Usage*" in later["text"]


async def _remembered(s, root: str) -> str:
    """A conversation in the private channel CPRIV; returns the link /codebot reset takes."""
    s.llm.enqueue_text("the secret is 42")
    await s.event(mention("remember the secret", channel="CPRIV", ts=root, user="UOWNER"))
    await s.slack.wait_for(lambda: "the secret is 42" in s.thread("CPRIV", root))
    await s.core.wait_idle(10)
    return f"https://fake.slack.com/archives/CPRIV/p{root.replace('.', '')}"


async def test_reset_by_link_needs_membership_of_the_threads_channel(tmp_path, slack):
    slack.admins.add("UADMIN")
    slack.channel_members["CPRIV"] = ["UOWNER", "U2", "U3", "UMEMBER"]
    slack.members_page_size = 2  # the member is on the second page: the bot must follow the cursor
    async with slack_stack(tmp_path, slack) as s:
        first, second = "1700000020.000100", "1700000021.000100"
        link = await _remembered(s, first)
        refused = ack_text(await s.command(f"reset {link}", user="UOUT", channel="C1"))
        assert "member" in refused and "Nothing was deleted" in refused
        assert await s.core.has_conversation(s.bot_key("CPRIV", first))
        assert "Forgot this thread" in ack_text(await s.command(f"reset {link}", user="UMEMBER"))
        assert not await s.core.has_conversation(s.bot_key("CPRIV", first))

        link = await _remembered(s, second)  # an admin may reset a thread in any channel
        assert "Forgot this thread" in ack_text(await s.command(f"reset {link}", user="UADMIN"))
        assert not await s.core.has_conversation(s.bot_key("CPRIV", second))
    checked = [c.params for c in slack.calls_to("conversations.members")]
    assert checked and all(c["channel"] == "CPRIV" for c in checked)
    assert any(c.get("cursor") for c in checked)  # paged through


async def test_reset_of_a_thread_in_a_channel_the_bot_cannot_see_is_refused(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        link = "https://fake.slack.com/archives/GSECRET/p1700000030000100"
        refused = ack_text(await s.command(f"reset {link}", user="U123", channel="C1"))
    assert "Nothing was deleted" in refused
    [call] = slack.calls_to("conversations.members")
    assert call.params["channel"] == "GSECRET"  # channel_not_found from Slack counts as "not a member"
