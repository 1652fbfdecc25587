"""The `/codebot` commands as a chat user sees them, over a real SQLite store."""

from __future__ import annotations

import pytest

from core.admin import Admins
from core.command_specs import COMMANDS
from core.commands import Commands
from core.limits import SPECS, LimitDefaults, LimitsEngine
from core.store.base import Workspace
from core.store.sqlite import SQLiteStore
from core.types import Author, CommandRequest, CommandResult, ThreadKey
from tests.limits.conftest import START, WS, Clock, audit, turn

ADMIN = Author("U9", "alice", is_admin=True)
MEMBER = Author("U1", "bob")
THREAD = ThreadKey("slack", "T1", "C1", "1700000000.000100")
OTHER_THREAD = ThreadKey("slack", "T2", "C5", "1700000000.000200")


@pytest.fixture
def commands(store: SQLiteStore, clock: Clock) -> Commands:
    return Commands(store, LimitsEngine(store, LimitDefaults(), clock), Admins(("U42",)), clock=clock)


async def run(
    commands: Commands, name: str, *args: str, author: Author = ADMIN, thread: ThreadKey | None = None
) -> CommandResult:
    req = CommandRequest("slack", "T1", "C1", author, name, tuple(args), thread)
    result = await commands.handle(req)
    assert len(result.text) <= req.reply_limit
    assert result.text.count("```") % 2 == 0, "a code block was left open"
    return result


async def test_help_lists_commands_limits_and_window_semantics(commands: Commands) -> None:
    result = await run(commands, "help", author=MEMBER)
    for word in ("`help`", "`limits`", "`set <limit> <value>`", "`usage`", "`reset`", "`audit [id]`"):
        assert word in result.text
    for spec in SPECS:
        assert spec.name in result.text
    assert "sliding windows" in result.text and "resets at midnight UTC" in result.text
    assert (await run(commands, "")).text == result.text


async def test_unknown_command_suggests_the_closest(commands: Commands) -> None:
    result = await run(commands, "limts")
    assert not result.ok
    assert result.text == "unknown command `limts`; did you mean `limits`? try `help`"
    assert (await run(commands, "frobnicate")).text == "unknown command `frobnicate`; try `help`"


async def test_limits_shows_values_ranges_defaults_and_what_admins_changed(commands: Commands) -> None:
    before = await run(commands, "limits", author=MEMBER)
    assert "timeout                 10 s" in before.text and "1-60 s" in before.text
    await run(commands, "set", "timeout", "30s")
    after = await run(commands, "limits", author=MEMBER)
    assert "timeout                 30 s *" in after.text and after.text.rstrip("`\n").count("10 s") >= 1


async def test_only_admins_may_set(commands: Commands, store: SQLiteStore) -> None:
    refused = await run(commands, "set", "timeout", "30", author=MEMBER)
    assert not refused.ok and refused.text.startswith("Only workspace admins can change limits.")
    assert (await store.limits(WS)).values == {}
    by_id = await run(commands, "set", "timeout", "20", author=Author("U42", "operator-listed"))
    assert by_id.ok and "`10 s` → `20 s`" in by_id.text
    by_platform = await run(commands, "set", "timeout", "25")
    assert by_platform.ok and "`20 s` → `25 s`" in by_platform.text


async def test_set_reports_bad_input_in_one_line(commands: Commands) -> None:
    unknown = await run(commands, "set", "timout", "30")
    assert not unknown.ok and unknown.text == "unknown limit `timout`; did you mean `timeout`?"
    too_big = await run(commands, "set", "memory", "4", "GB")
    assert too_big.text == "memory must be between 64 and 1,024 MB (got 4 GB)"
    assert (await run(commands, "set")).text.startswith("`set` needs a limit and a value")
    describe = await run(commands, "set", "steps")
    assert describe.text.startswith("*steps* (code runs the agent may try per question) is `3`; allowed 1-10")


async def test_set_accepts_the_whole_command_in_the_name(commands: Commands) -> None:
    result = await run(commands, "set channels <#C1|general> <#C2>")
    assert result.ok and "`all` → `C1, C2`" in result.text


async def test_usage_today_this_week_and_for_the_caller(
    commands: Commands, store: SQLiteStore, clock: Clock
) -> None:
    monday = START - 3 * 86400  # earlier this week
    await store.commit_turn(
        turn(THREAD, "e1", user="U1", audits=[audit(THREAD)], tokens=1500, sandbox_ms=2500)
    )
    await store.commit_turn(turn(THREAD, "e2", user="U2", audits=[audit(THREAD), audit(THREAD)], tokens=500))
    await store.commit_turn(turn(THREAD, "e3", user="U1", at=monday, tokens=10_000, refusals=1))
    await store.commit_turn(turn(THREAD, "e4", user="U1", at=START - 8 * 86400, tokens=99_999))  # last week
    await store.commit_turn(turn(OTHER_THREAD, "e5", user="U1", tokens=77_777))  # another workspace
    await commands._limits.record_tokens(WS, 2000)
    result = await run(commands, "usage", author=MEMBER)
    lines = result.text.splitlines()
    row = {line.split()[0]: line.split()[-4:] for line in lines if line[:1].isalpha() and "  " in line}
    assert row["questions"] == ["2", "3", "1", "2"]  # ws today, ws week, you today, you week
    assert row["tokens"] == ["2,000", "12,000", "1,500", "11,500"]
    assert row["refusals"] == ["0", "1", "0", "1"]
    assert row["sandbox"] == ["2.5", "2.5", "2.5", "2.5"]
    assert lines[-1].endswith("tokens today 2,000/1,000,000")


async def test_usage_shows_the_callers_live_window(commands: Commands) -> None:
    from tests.limits.conftest import incoming

    limits = await commands._limits.effective(WS)
    await commands._limits.admit(incoming("U1"), limits)
    result = await run(commands, "usage", author=MEMBER)
    assert "your runs in the last hour 1/30 · workspace runs in the last 24 h 1/500" in result.text


async def test_reset_forgets_the_thread_only_inside_a_thread(commands: Commands, store: SQLiteStore) -> None:
    await store.commit_turn(turn(THREAD, "e1", messages=['{"role": "user"}', '{"role": "assistant"}']))
    hint = await run(commands, "reset", author=MEMBER)
    assert not hint.ok and "inside the thread" in hint.text
    done = await run(commands, "reset", author=MEMBER, thread=THREAD)
    assert done.text.startswith("Forgot this thread's history (2 messages).")
    assert await store.load_messages(THREAD, 10) == []
    again = await run(commands, "reset", author=MEMBER, thread=THREAD)
    assert again.text.startswith("This thread has no history")


async def seed_audit(store: SQLiteStore, n: int) -> None:
    for i in range(n):
        rec = audit(THREAD, user=f"U{i}", at=START + i * 60, code=f"print({i})")
        await store.commit_turn(turn(THREAD, f"e{i}", audits=[rec]))


async def test_audit_is_for_admins_and_lists_newest_first(commands: Commands, store: SQLiteStore) -> None:
    await seed_audit(store, 3)
    refused = await run(commands, "audit", author=MEMBER)
    assert not refused.ok and refused.text == "Only workspace admins can see the audit log."
    listing = (await run(commands, "audit")).text.splitlines()
    assert listing[1] == "`#3` 2026-11-26 14:02 UTC · `U2` · allowed/low · ok · 120 ms"
    assert [line.split()[0] for line in listing[1:]] == ["`#3`", "`#2`", "`#1`"]


async def test_audit_pages_and_shows_one_runs_code(commands: Commands, store: SQLiteStore) -> None:
    await seed_audit(store, 12)
    first = (await run(commands, "audit")).text
    assert "`#12`" in first and "`#3`" in first and "`#2`" not in first
    assert first.endswith("Older: `audit before 3`")
    older = (await run(commands, "audit", "before", "3")).text
    assert "`#2`" in older and "`#1`" in older and "Older" not in older
    one = (await run(commands, "audit", "#5")).text
    assert one.startswith("*Run #5* · 2026-11-26 14:04 UTC · by `U4` in `C1` · step 1")
    assert one.endswith("```python\nprint(4)\n```")
    assert (await run(commands, "audit", "abc")).text.startswith("`audit` takes a run id")


async def test_audit_never_shows_another_workspaces_run(commands: Commands, store: SQLiteStore) -> None:
    await store.commit_turn(turn(OTHER_THREAD, "x", audits=[audit(OTHER_THREAD, code="secret_stuff()")]))
    assert (await run(commands, "audit", "1")).text == "No run `#1` in this workspace's audit log."
    assert (await run(commands, "audit")).text == "No code has run in this workspace yet."


async def test_audit_code_cannot_escape_its_block_and_long_code_is_cut(
    commands: Commands, store: SQLiteStore
) -> None:
    code = "x = '```'\n" + "print('spam')\n" * 500
    await store.commit_turn(turn(THREAD, "e", audits=[audit(THREAD, code=code, allowed=False, risk="high")]))
    shown = (await run(commands, "audit", "1")).text
    assert shown.count("```") == 2 and "allowed" not in shown and "refused/high" in shown
    assert "code truncated" in shown


async def test_every_reply_fits_a_chat_message(commands: Commands, store: SQLiteStore) -> None:
    await commands._limits.set(
        Workspace("slack", "T1"), "channels", " ".join(f"C{i:08d}" for i in range(50)), ADMIN
    )
    for name in ("help", "limits", "usage", "audit"):
        await run(commands, name)


async def test_every_described_command_is_answered_and_admin_ones_are_gated(commands: Commands) -> None:
    for spec in COMMANDS:
        result = await run(commands, spec.name, author=MEMBER, thread=THREAD)
        assert not result.text.startswith("unknown command"), spec.name
        if spec.admin:
            assert not result.ok and result.text == spec.refusal


async def test_a_reply_fits_the_size_the_platform_asked_for(commands: Commands) -> None:
    req = CommandRequest("discord", "G1", "C1", MEMBER, "help", reply_limit=600)
    result = await commands.handle(req)
    assert len(result.text) <= 600 and result.text.count("```") % 2 == 0
    assert result.text.endswith("_(truncated)_")
