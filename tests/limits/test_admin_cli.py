"""`codebot admin`: show, set and log limits, export the audit trail; bad input exits 2 in one line."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from bot.admin_cli import main
from bot.cli import main as cli_main
from core.settings import Settings
from core.store.sqlite import SQLiteStore
from core.types import ThreadKey
from tests.limits.conftest import START, audit, turn

SLACK = ThreadKey("slack", "T1", "C1", "1.0")
DISCORD = ThreadKey("discord", "G7", "55", "66")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, db=tmp_path / "codebot.db")  # type: ignore[call-arg]


def seed(settings: Settings) -> None:
    async def fill() -> None:
        store = SQLiteStore(settings.db)
        await store.open()
        try:
            await store.commit_turn(turn(SLACK, "a", audits=[audit(SLACK, code="=1+1", user="U1")]))
            refused = audit(
                SLACK, at=START + 60, code="import os", allowed=False, risk="high", outcome="refused"
            )
            await store.commit_turn(turn(SLACK, "b", audits=[refused], at=START + 60))
            await store.commit_turn(
                turn(DISCORD, "c", audits=[audit(DISCORD, code="print('hi')", user="42")])
            )
        finally:
            await store.close()

    asyncio.run(fill())


def admin(
    settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str, **env: str
) -> tuple[int, str, str]:
    """Run `codebot admin ARGV` with the fixture's database and `env` as more settings."""
    if env:
        settings = Settings(_env_file=None, db=settings.db, **env)  # type: ignore[call-arg]
    code = main(list(argv), settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_set_show_and_list_changes(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = admin(settings, capsys, "set", "slack:T1", "timeout", "45", "s")
    assert code == 0 and out.strip() == "timeout: 10 s → 45 s; takes effect on the next question."
    code, out, _ = admin(settings, capsys, "limits", "slack:T1")
    assert code == 0 and out.startswith("Limits for slack:T1")
    row = next(line.split() for line in out.splitlines() if line.startswith("timeout"))
    assert row == ["timeout", "45", "s", "*", "1-60", "s", "10", "s"]
    code, out, _ = admin(settings, capsys, "changes", "slack:T1")
    assert code == 0 and out.strip().endswith("timeout: 10 -> 45  by operator")
    _, out, _ = admin(settings, capsys, "changes", "discord:G7")
    assert out.strip() == "No limit changes for discord:G7."


def test_operator_ceilings_from_the_environment_apply(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = admin(settings, capsys, "set", "slack:T1", "timeout", "2m")
    assert code == 2 and err == "codebot admin: timeout must be between 1 and 60 seconds (got 2m)\n"
    code, out, _ = admin(
        settings, capsys, "set", "slack:T1", "timeout", "2m", CODEBOT_LIMIT_TIMEOUT_MAX="300"
    )
    assert code == 0 and "→ 120 s" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["limits", "T1"], "workspace must look like PLATFORM:ID, e.g. slack:T0123 (got 'T1')"),
        (["limits", "teams:T1"], "workspace must look like PLATFORM:ID"),
        (["set", "slack:T1", "timout", "5"], "unknown limit `timout`; did you mean `timeout`?"),
        (["set", "slack:T1", "steps", "-2"], "steps must be between 1 and 10 steps (got -2)"),
        (["set", "slack:T1", "steps"], "the following arguments are required: VALUE"),
        (["audit", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "missing command; use limits, set, changes or audit"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    seed(settings)
    code, out, err = admin(settings, capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"codebot admin: {message}") and err.count("\n") == 1


def test_a_bad_limit_variable_is_named(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(settings)
    monkeypatch.chdir(tmp_path)  # the settings are read as `codebot admin` reads them: .env, environment
    monkeypatch.setenv("CODEBOT_DB", str(settings.db))
    monkeypatch.setenv("CODEBOT_LIMIT_MEMORY", "lots")
    code = cli_main(["admin", "limits", "slack:T1"])
    err = capsys.readouterr().err
    assert code == 2 and "CODEBOT_LIMIT_MEMORY: memory must be a number" in err and err.count("\n") == 1


def test_reading_a_missing_database_does_not_create_one(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = admin(settings, capsys, "audit")
    assert code == 2 and "no database at" in err and not Path(settings.db).exists()


def test_export_jsonl_to_a_file(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed(settings)
    target = tmp_path / "audit.jsonl"
    code, out, err = admin(settings, capsys, "audit", "--format", "jsonl", "--output", str(target))
    assert code == 0 and out == "" and "wrote 3 audit records" in err
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["code"] for r in rows] == ["=1+1", "import os", "print('hi')"]  # oldest first, exact text
    assert rows[1]["allowed"] is False and rows[1]["outcome"] == "refused" and rows[1]["risk"] == "high"
    assert rows[0]["at_iso"] == "2026-11-26T14:00:00+00:00" and rows[2]["platform"] == "discord"


def test_export_csv_for_one_workspace_to_stdout(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(settings)
    code, out, _ = admin(settings, capsys, "audit", "--workspace", "slack:T1", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(out.splitlines()))
    assert [r["workspace"] for r in rows] == ["T1", "T1"]
    assert rows[0]["code"] == "'=1+1"  # a spreadsheet must not evaluate user code as a formula
    assert rows[1]["allowed"] == "False" and rows[1]["user_id"] == "U1"


def test_export_into_a_missing_directory_is_refused(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed(settings)
    code, _, err = admin(settings, capsys, "audit", "--output", str(tmp_path / "nope" / "a.jsonl"))
    assert code == 2 and "does not exist" in err
