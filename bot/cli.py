"""The `codebot` command line. Heavy imports happen inside each subcommand, so each starts fast."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from core.logs import configure_logging
from core.settings import ConfigError, Settings, load_settings
from core.store.base import StoreError

if TYPE_CHECKING:
    from core.service import Codebot

log = logging.getLogger("codebot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codebot", description="Chat bot that answers by running Python safely.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    c = sub.add_parser("console", help="chat in the terminal (default; no chat platform needed)")
    c.add_argument("--thread", help="resume (or start) a named conversation")
    c.add_argument("--files-dir", type=Path, default=Path("codebot-output"), help="where returned files go")
    c.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file to the first question (repeatable); `/attach PATH` does it later",
    )
    s = sub.add_parser("slack", help="run the Slack bot (Socket Mode, or --http)")
    s.add_argument("--http", action="store_true", help="serve the Events API over HTTP instead")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=3000)
    d = sub.add_parser("discord", help="run the Discord bot")
    d.add_argument("--sync-commands", action="store_true", help="sync slash commands now, then run")
    d.add_argument("--guild", type=int, help="with --sync-commands: sync to this guild only (instant)")
    r = sub.add_parser("run", help="run one Python file in the sandbox and print the result")
    r.add_argument("file")
    r.add_argument("--json", action="store_true")
    sub.add_parser("setup", help="prepare the sandbox environment (idempotent)")
    sub.add_parser("doctor", help="check the sandbox, the store and the settings")
    a = sub.add_parser("admin", help="operator commands: limits, changes, audit export")
    a.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `codebot` console script."""
    args = _parser().parse_args(argv)
    cmd = args.cmd or "console"
    try:
        settings = load_settings()
        if cmd in ("run", "setup"):
            from sandbox.cli import main as sandbox_main

            # The sandbox takes the bot's config, so `codebot setup` prepares the directory the bot uses.
            argv = [cmd, args.file, *(["--json"] if args.json else [])] if cmd == "run" else [cmd]
            return sandbox_main(argv, settings.sandbox)
        _configure_logging(settings, quiet=cmd == "console")
        if cmd == "admin":
            from bot.admin_cli import main as admin_main

            return admin_main(args.args, settings)
        if cmd == "doctor":
            from bot.doctor import run_doctor

            return asyncio.run(run_doctor(settings))
        return asyncio.run(_serve(cmd, args, settings))
    except ConfigError as exc:
        print(f"codebot: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _configure_logging(settings: Settings, quiet: bool) -> None:
    level = (
        logging.WARNING if quiet and settings.log_level == "INFO" else getattr(logging, settings.log_level)
    )
    configure_logging(level, settings.log_format, secret_values(settings))
    for noisy in ("httpx", "openai", "discord.client", "discord.gateway", "slack_bolt", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def secret_values(settings: Settings) -> list[str]:
    """Return the values the log formatter must scrub from every line."""
    # Secret settings, plus any *_KEY/*_TOKEN/... variable: mirascope reads other providers' keys itself.
    values = [v.get_secret_value() for v in vars(settings).values() if isinstance(v, SecretStr)]
    return [v for v in [*values, *settings.env_secrets] if v]


async def _serve(cmd: str, args: argparse.Namespace, settings: Settings) -> int:
    from bot.ops_http import serve_ops
    from bot.wiring import open_core
    from core.readiness import Ops
    from sandbox.types import SandboxUnavailable

    _check_platform_settings(cmd, args, settings)
    ops = Ops()  # the one metrics registry of this process; the listener answers from start-up on
    # The console is a person at a terminal, not a service: it must not take the port of a bot running
    # on the same host with the same .env.
    listener = serve_ops(settings, ops) if cmd != "console" else contextlib.nullcontext()
    try:
        # Each process takes over only the dead replicas' turns of its own platform: it can tell only those.
        async with listener, open_core(settings, ops=ops, platforms=(cmd,)) as core:
            # Everything built so far (modules, SDK schemas, pydantic models) lives as long as the
            # process. Moving it out of the collector's reach keeps full collections from rescanning
            # it: without this, a full collection under load blocked the event loop for over 100 ms.
            # Done here, by the long-lived process, not by the reusable open_core.
            gc.freeze()
            if cmd == "console":
                from bot.console.app import run_console

                return await run_console(
                    core, thread=args.thread, files_dir=args.files_dir, attach=args.attach
                )
            if cmd == "slack":
                return await _run_slack(core, settings, args)
            return await _run_discord(core, settings, args)
    except SandboxUnavailable as exc:
        print(f"codebot: the sandbox is unavailable: {exc}", file=sys.stderr)
        return 3
    except StoreError as exc:
        print(f"codebot: storage error: {exc}", file=sys.stderr)
        return 4


def _check_platform_settings(cmd: str, args: argparse.Namespace, settings: Settings) -> None:
    if cmd == "slack":  # Events over HTTP are signed; Socket Mode needs the app-level token
        settings.require("slack_bot_token", "slack_signing_secret" if args.http else "slack_app_token")
    elif cmd == "discord":
        settings.require("discord_token")


async def _run_until_signal(run: Awaitable[None], stop: Callable[[], Awaitable[None]]) -> None:
    """Run an adapter; SIGTERM/SIGINT stop it gracefully (no new work, running turns finish)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = asyncio.ensure_future(run)
    waiter = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if stopping.is_set():
        log.info("signal received: shutting down gracefully")
        await stop()
    waiter.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    if not runner.cancelled() and (error := runner.exception()) is not None:
        raise error


async def _run_slack(core: Codebot, settings: Settings, args: argparse.Namespace) -> int:
    from bot.slack.app import SlackBot

    slack = SlackBot(core, settings)
    run = slack.run_http(args.host, args.port) if args.http else slack.run_socket_mode()
    await _run_until_signal(run, slack.stop)
    return 0


async def _run_discord(core: Codebot, settings: Settings, args: argparse.Namespace) -> int:
    from bot.discord.client import DiscordBot

    bot = DiscordBot(core, settings)
    if args.sync_commands:
        bot.request_sync(args.guild)
    await _run_until_signal(bot.run(), bot.stop)
    return 0
