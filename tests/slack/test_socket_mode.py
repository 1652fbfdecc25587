"""Socket Mode end to end: the real slack-sdk client on a fake WebSocket endpoint, real core."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import pytest

from bot.slack.app import SlackBot
from core.settings import ConfigError, Settings
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
from tests.slack.payloads import command_form, mention, message
from tests.slack.stack import bot_settings


async def test_socket_mode_events_commands_redelivery_and_refresh(tmp_path, slack):
    async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url) as core:
        bot = SlackBot(core, bot_settings(slack), status_interval_s=0.05)
        running = asyncio.create_task(bot.run_socket_mode())
        try:
            await slack.wait_for(lambda: slack.ws_connections == 1)
            [opened] = slack.calls_to("apps.connections.open")
            assert opened.headers["Authorization"] == "Bearer xapp-1-A1-test"

            llm.enqueue_text("over the socket")
            root = "1700000020.000100"
            body = mention("hello", ts=root)
            await slack.send_event(body, "env-1")
            await slack.wait_for(lambda: {"envelope_id": "env-1"} in slack.ws_received)
            await slack.wait_for(lambda: "over the socket" in texts(slack, root))
            await core.wait_idle(10)

            await slack.send_event(body, "env-2", retry_attempt=1)  # Slack redelivers: acked, not rerun
            await slack.wait_for(lambda: {"envelope_id": "env-2"} in slack.ws_received)

            await slack.request_refresh()
            await slack.wait_for(lambda: slack.ws_connections == 2, timeout_s=15)
            assert len(slack.calls_to("apps.connections.open")) == 2

            llm.enqueue_text("still here")
            await slack.send_event(message("and now?", thread_ts=root), "env-3")
            await slack.wait_for(lambda: "still here" in texts(slack, root), timeout_s=15)
            await core.wait_idle(10)
            assert texts(slack, root).count("over the socket") == 1 and len(llm.agent_requests) == 2

            form = dict(parse_qsl(command_form("frobnicate")))
            await slack.ws_send(
                {
                    "envelope_id": "cmd-1",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": form,
                }
            )
            acked = await slack.wait_for(
                lambda: [m for m in slack.ws_received if m["envelope_id"] == "cmd-1"]
            )
            assert "unknown command" in acked[0]["payload"]["text"]
        finally:
            await bot.stop()
            await running
    assert not core.accepting


def texts(slack, root: str) -> list[str]:
    return [c.params["text"] for c in slack.thread_posts("C1", root)]


async def test_a_rejected_bot_token_stops_start_up_with_a_clear_error(tmp_path, slack):
    slack.fail_next("auth.test", status=200, retry_after=None, error="invalid_auth")
    async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url) as core:
        bot = SlackBot(core, bot_settings(slack))
        with pytest.raises(ConfigError) as caught:
            await bot.run_socket_mode()
    message = str(caught.value)
    assert "SLACK_BOT_TOKEN" in message and "invalid_auth" in message and "xoxb-test-token" not in message
    assert slack.calls_to("apps.connections.open") == []  # nothing connected with a bad token


async def test_missing_tokens_are_named(tmp_path, slack):
    async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url) as core:
        with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
            SlackBot(core, Settings(_env_file=None, SLACK_API_URL=slack.base_url))
        no_app_token = bot_settings(slack).model_copy(update={"slack_app_token": None})
        bot = SlackBot(core, no_app_token)
        with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
            await bot.run_socket_mode()
        await bot.stop()
