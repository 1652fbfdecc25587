"""Log lines: JSON that parses, the turn's thread key and id on each of its lines, never a secret."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from bot.cli import secret_values
from core.logs import LogFormat, configure_logging, turn_context
from core.settings import Settings
from tests.ops.conftest import OpsStack, incoming
from tests.recording_sink import RecordingSink

# Token-shaped values as the real services issue them (none of them is real).
SLACK_BOT = "xoxb-2093847561-5102938475612-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_APP = "xapp-1-A0123456789-1234567890123-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
OPENAI = "sk-proj-Zx8Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz"
DISCORD = "MTA5ODc2NTQzMjEwOTg3NjU0.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab"
SIGNING = "8f14e45fceea167a5a36dedd4bea2543"  # not token-shaped: only the configured value catches it
PG_PASSWORD = "hunter2-but-longer"
SECRETS = (SLACK_BOT, SLACK_APP, OPENAI, DISCORD, SIGNING, PG_PASSWORD)


@contextlib.contextmanager
def captured(fmt: LogFormat, secrets: tuple[str, ...] = (SIGNING, SLACK_BOT)) -> Iterator[io.StringIO]:
    """Route all logging through our handler into a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    level = root.level
    buf = io.StringIO()
    handler = configure_logging(logging.INFO, fmt, secrets, stream=buf)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


async def test_every_line_of_a_turn_is_json_with_its_thread_key_and_turn_id(stack: OpsStack):
    with captured("json") as buf:
        await _turn_with_a_retry(stack)
        logging.getLogger("codebot").info("after the turn")
    entries = [json.loads(line) for line in lines(buf)]  # every line parses
    turn_lines = [e for e in entries if e.get("turn") == "Ev-log"]
    assert {e["logger"] for e in turn_lines} >= {"core.observe", "core.llm"}
    assert all(e["thread"] == "slack:T9:C9:1700.5" for e in turn_lines)
    assert [e["msg"] for e in turn_lines if e["logger"] == "core.observe"][-1].startswith("turn finished: ok")
    after = [e for e in entries if e["msg"] == "after the turn"]
    assert after and "turn" not in after[0] and {"ts", "level", "logger"} <= after[0].keys()


async def _turn_with_a_retry(stack: OpsStack) -> None:
    stack.llm.enqueue_error(503)  # logged by the LLM client from inside the turn
    stack.llm.enqueue_text("Hello.")
    sink = RecordingSink()
    assert (await stack.core.submit(incoming("hi", thread="1700.5", event="Ev-log"), sink)).accepted
    await stack.core.wait_idle(30)
    assert sink.answers == ["Hello."]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_survives_in_message_arguments_extras_or_tracebacks(fmt: LogFormat):
    log = logging.getLogger("tests.ops.secrets")
    with captured(fmt) as buf, turn_context("slack:T1:C1:1.2", "Ev9"):
        log.warning("slack rejected %s and %s", SLACK_BOT, SLACK_APP)
        log.error("server said: invalid key %s", OPENAI, extra={"auth": f"Bot {DISCORD}"})
        log.info("signing secret=%s db=postgresql://bot:%s@db:5432/codebot", SIGNING, PG_PASSWORD)
        try:
            raise RuntimeError(f"Authorization: Bearer {OPENAI} refused")
        except RuntimeError:
            log.exception("request failed")
    out = lines(buf)
    assert len(out) == 4  # one line per event, the traceback included
    for line in out:
        assert not [s for s in SECRETS if s in line], line
        assert "[redacted]" in line
        if fmt == "json":
            assert json.loads(line)["turn"] == "Ev9"
        else:
            assert "thread=slack:T1:C1:1.2 turn=Ev9" in line


def test_a_chat_message_cannot_forge_a_text_log_line():
    with captured("text") as buf, turn_context("slack:T1:C1:1.2\nforged", "Ev\r\n1"):
        logging.getLogger("tests.ops").info("question: %s", "hi\n2026-01-01 ERROR core: forged")
    [line] = lines(buf)
    assert "question: hi\\n2026-01-01 ERROR core: forged" in line
    assert "thread=slack:T1:C1:1.2forged turn=Ev1" in line


def test_ordinary_lines_are_left_alone():
    plain = (
        "turn finished: ok in 2.1 s, 1 step(s)",
        "LLM call failed: ServerError (status 503, attempt 1)",
        "slack post failed in C0123ABCD: channel_not_found",
        "result = sum(range(10**5)); token_count = 42",
        "the bot configuration is incomplete; Bearer authentication is off",
    )
    with captured("text") as buf:
        for text in plain:
            logging.getLogger("tests.ops").info(text)
    assert [line.split(": ", 1)[1] for line in lines(buf)] == list(plain)


def test_keys_of_other_providers_in_the_environment_are_scrubbed_too(monkeypatch: pytest.MonkeyPatch):
    google = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"  # no token pattern knows this shape
    for name in [n for n in os.environ if n.upper().endswith(("KEY", "TOKEN", "SECRET", "PASSWORD"))]:
        monkeypatch.delenv(name)  # only this test's variables count
    monkeypatch.setenv("GOOGLE_API_KEY", google)
    monkeypatch.setenv("HOME", "/root/home")
    settings = Settings(_env_file=None, SLACK_SIGNING_SECRET=SIGNING)  # type: ignore[call-arg]
    secrets = tuple(secret_values(settings))
    assert set(secrets) == {SIGNING, google}
    with captured("json", secrets) as buf:
        logging.getLogger("tests.ops").warning("google said no to %s (signing %s)", google, SIGNING)
    [line] = lines(buf)
    assert google not in line and SIGNING not in line
