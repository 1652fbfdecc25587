"""`python -m sandbox run FILE [--json] | setup | doctor` (also behind `codebot run/setup/doctor`).

Exit codes of `run`: 0 the code ran OK, 1 it failed (error, non-zero exit, killed), 2 the sandbox is
unavailable or the input/configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from sandbox.api import Sandbox
from sandbox.config import SandboxConfig
from sandbox.types import RunResult, SandboxUnavailable

MAX_SOURCE_BYTES = 1024 * 1024


def main(argv: list[str] | None = None, config: SandboxConfig | None = None) -> int:
    """Run the sandbox command line; return the process exit code.

    `codebot run/setup` pass the bot's `config` (its Settings read `.env` too); standalone, the sandbox
    reads its own CODEBOT_SANDBOX_* variables from the process environment, as it imports nothing of ours.
    """
    args = _parser().parse_args(argv)
    try:
        cfg = SandboxConfig.from_env() if config is None else config
    except ValueError as exc:
        print(f"sandbox: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "run":
        return _cmd_run(cfg, Path(args.file), args.json)
    if args.cmd == "setup":
        return _cmd_setup(cfg)
    return _cmd_doctor(cfg)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Run untrusted Python in a sandbox."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run one Python file in the sandbox and print the result")
    run.add_argument("file", help="Python source file ('-' for stdin)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("setup", help="prepare the sandbox's environment (idempotent)")
    sub.add_parser("doctor", help="report which isolation layers are active here")
    return parser


def _read_source(file: Path) -> str:
    data = sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1) if str(file) == "-" else file.read_bytes()
    if len(data) > MAX_SOURCE_BYTES:
        raise ValueError(f"{file} is larger than {MAX_SOURCE_BYTES} bytes")
    return data.decode("utf-8")


def _cmd_run(cfg: SandboxConfig, file: Path, as_json: bool) -> int:
    try:
        code = _read_source(file)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        print(f"sandbox: cannot read {file}: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_run_once(cfg, code))
    except SandboxUnavailable as exc:
        print(f"sandbox: unavailable: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json(), ensure_ascii=False) if as_json else summary(result))
    return 0 if result.ok else 1


async def _run_once(cfg: SandboxConfig, code: str) -> RunResult:
    # One run needs no warm pool: pre-importing pyplot would only add to the wait.
    async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
        return await sb.run(code)


def summary(result: RunResult) -> str:
    """Render a result for a terminal."""
    lines = []
    for title, text in (("stdout", result.stdout), ("stderr", result.stderr), ("error", result.error)):
        if text:
            lines += [f"--- {title} ---", text.rstrip("\n")]
    if result.result is not None:
        lines += ["--- result ---", result.result]
    for f in result.files:
        lines.append(f"file: {f.name} ({f.size} bytes)")
    for name in result.skipped_files:
        lines.append(f"skipped file: {name}")
    status = "ok" if result.ok else f"failed (exit code {result.exit_code})"
    if result.killed_reason:
        status += f", killed: {result.killed_reason}"
    if result.truncated:
        status += ", output truncated"
    if result.isolation != "full":
        status += f", WEAK ISOLATION: {result.isolation}"
    lines.append(f"=== {status} in {result.duration_ms:.0f} ms ===")
    return "\n".join(lines)


def _cmd_setup(cfg: SandboxConfig) -> int:
    import subprocess

    from sandbox.setup import run_setup

    try:
        run_setup(cfg)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"sandbox: setup failed: {exc}", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(_run_once(cfg, "print('ok')"))
    except SandboxUnavailable as exc:
        print(f"sandbox: set up, but the sandbox does not work yet: {exc}", file=sys.stderr)
        return 2
    print(f"self-test: {'ok' if result.ok else 'FAILED'} ({result.isolation} isolation)")
    return 0 if result.ok else 1


def _cmd_doctor(cfg: SandboxConfig) -> int:
    from sandbox.doctor import report

    checks = report(cfg)
    for check in checks:
        print(f"[{'ok' if check.ok else '!!'}] {check.name}: {check.detail}")
    return 0 if all(c.ok for c in checks) else 1
