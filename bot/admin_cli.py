"""`codebot admin`: operators show and set any workspace's limits and export the audit log."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bot.wiring import limits_engine, store_for
from core.limits import LimitError
from core.limits.render import limits_table
from core.limits.timefmt import iso, stamp
from core.settings import Settings
from core.store.base import AuditRecord, StoreError, Workspace
from core.types import Author

PLATFORMS = ("slack", "discord", "console")
OPERATOR = Author("operator", "operator", is_admin=True)
EXPORT_FIELDS = (
    "id", "platform", "workspace", "channel", "thread", "user_id", "at", "at_iso", "step", "allowed", "risk",
    "reasons", "outcome", "exit_code", "duration_ms", "code",
)  # fmt: skip
_KEY_FIELDS = ("platform", "workspace", "channel", "thread")  # of the record's thread key
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _UsageError(Exception):
    """Bad command-line input; reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


@dataclass(frozen=True)
class _Output:
    text: str = ""
    records: tuple[AuditRecord, ...] | None = None


def main(argv: list[str], settings: Settings) -> int:
    """Run `codebot admin ARGS`; return 0, 1 (store or file problem) or 2 (bad input)."""
    try:
        args = _parser().parse_args(argv)
        if args.cmd is None:
            raise _UsageError("missing command; use limits, set, changes or audit (see --help)")
        ws = _workspace(args.workspace) if args.workspace else None
        database = settings.database  # a PostgreSQL URL (str) exists as far as we can tell here
        if args.cmd != "set" and isinstance(database, Path) and not database.exists():
            raise _UsageError(f"no database at {database} (set CODEBOT_DB to the bot's database)")
        out = asyncio.run(_run(args, ws, settings))
        if out.records is not None:
            _export(out.records, args.format, args.output)
        elif out.text:
            print(out.text)
        return 0
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (_UsageError, LimitError, ValueError) as exc:
        print(f"codebot admin: {exc}", file=sys.stderr)
        return 2
    except (StoreError, OSError) as exc:
        print(f"codebot admin: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="codebot admin", description="Show and set workspace limits; export the audit log.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    show = sub.add_parser("limits", help="show a workspace's limits")
    show.add_argument("workspace", metavar="PLATFORM:WORKSPACE")
    change = sub.add_parser("set", help="set a workspace's limit (recorded as by 'operator')")
    change.add_argument("workspace", metavar="PLATFORM:WORKSPACE")
    change.add_argument("name", metavar="NAME")
    change.add_argument("value", metavar="VALUE", nargs="+")
    log = sub.add_parser("changes", help="list a workspace's limit changes, newest first")
    log.add_argument("workspace", metavar="PLATFORM:WORKSPACE")
    log.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    audit = sub.add_parser("audit", help="export the audit log, oldest first")
    audit.add_argument("--workspace", metavar="PLATFORM:WORKSPACE", help="only this workspace")
    audit.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    audit.add_argument("--output", type=Path, metavar="FILE", help="write here instead of stdout")
    return p


def _workspace(text: str) -> Workspace:
    platform, _, ident = text.partition(":")
    if platform.lower() not in PLATFORMS or not ident.strip() or any(c.isspace() for c in ident):
        raise _UsageError(f"workspace must look like PLATFORM:ID, e.g. slack:T0123 (got {text!r})")
    return Workspace(platform.lower(), ident)


async def _run(args: argparse.Namespace, ws: Workspace | None, settings: Settings) -> _Output:
    store = store_for(settings, pool_size=1)
    await store.open()
    try:
        engine = limits_engine(store, settings)
        d = engine.defaults
        if args.cmd == "audit":
            return _Output(records=tuple(await store.export_audit(ws)))
        assert ws is not None
        if args.cmd == "limits":
            table = limits_table(await engine.effective(ws), d)
            return _Output(f"Limits for {ws} (* = set by an admin)\n{table}")
        if args.cmd == "set":
            text = await engine.set(ws, args.name, " ".join(args.value), OPERATOR)
            return _Output(text.replace("*", "").replace("`", ""))
        changes = await engine.changes(ws, max(1, args.limit))
        lines = [f"{stamp(c.at)}  {c.name}: {c.old or '-'} -> {c.new}  by {c.by}" for c in changes]
        return _Output("\n".join(lines) or f"No limit changes for {ws}.")
    finally:
        await store.close()


def _row(r: AuditRecord) -> dict[str, Any]:
    row = {f: getattr(r.key if f in _KEY_FIELDS else r, f, None) for f in EXPORT_FIELDS}
    return {**row, "at_iso": iso(r.at)}


def _render(records: tuple[AuditRecord, ...], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(_row(r), ensure_ascii=False) + "\n" for r in records)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: _cell(v) for k, v in _row(r).items()})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas in untrusted text (JSON lines keep the exact text)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _export(records: tuple[AuditRecord, ...], fmt: str, output: Path | None) -> None:
    data = _render(records, fmt)
    if output is None:
        sys.stdout.write(data)
        return
    if not output.parent.is_dir():
        raise _UsageError(f"cannot write {output}: the directory {output.parent} does not exist")
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, output)  # readers never see half a file
    print(f"wrote {len(records)} audit record{'s' if len(records) != 1 else ''} to {output}", file=sys.stderr)
