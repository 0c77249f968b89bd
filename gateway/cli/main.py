"""The `ticket-gateway` command: builds the settings once, configures logging, dispatches.

Exit statuses follow sysexits.h where an MTA reads them (`ingest`): 0 stored, 65 data
error, 67 unknown recipient, 75 temporary failure. A bad configuration exits 2; a command
that only reads exits 66 (EX_NOINPUT) when the configured path holds no database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway import __version__
from gateway.cli import exit_codes
from gateway.cli.attachments import add_attachment_commands
from gateway.cli.maintenance import add_maintenance_commands
from gateway.cli.queues import add_inbound_commands, add_outbox_commands
from gateway.cli.read_only import NoDatabaseError
from gateway.cli.status import add_status_command
from gateway.cli.tickets import add_ticket_commands
from gateway.clock import SystemClock
from gateway.daemon import serve
from gateway.desk.pipeline import open_pipeline
from gateway.outbound.render import Renderer, TemplateCheckError
from gateway.runtime.logs import configure_logging
from gateway.settings import ConfigError, Settings, config_path, load_settings
from gateway.storage.database import is_temporary
from gateway.storage.migrations import SchemaVersionError

log = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(config_path(args.config))
    except ConfigError as error:
        print(f"ticket-gateway: {error}", file=sys.stderr)
        return exit_codes.USAGE
    configure_logging(settings.logging.level, settings.logging.format)
    command: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]] = args.command
    try:
        return asyncio.run(command(settings, args))
    except NoDatabaseError as error:
        print(f"ticket-gateway: {error}", file=sys.stderr)
        return exit_codes.NOINPUT
    except SchemaVersionError as error:
        print(f"ticket-gateway: {error}", file=sys.stderr)
        return exit_codes.SCHEMA_VERSION
    except KeyboardInterrupt:
        return exit_codes.OK


def build_parser() -> argparse.ArgumentParser:
    config_help = "TOML configuration file (default: $GATEWAY_CONFIG)"
    # --config may come before or after the command; the later one wins.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(prog="ticket-gateway", description="Turns a support desk's email into tickets.")
    parser.add_argument("--config", metavar="PATH", default=None, help=config_help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[..., Awaitable[int]], help: str, parent: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(command=handler)
        return sub

    command("serve", run_serve, "run the daemon: SMTP/LMTP listener and pipeline")
    ingest = command("ingest", run_ingest, "store one message from standard input (MTA pipe transport)")
    ingest.add_argument("--recipient", action="append", default=[], help="envelope recipient (repeatable)")
    ingest.add_argument("--sender", default="", help="envelope sender")
    command("check-config", run_check_config, "validate the configuration and print the effective settings")
    add_status_command(command)
    add_maintenance_commands(command)

    tickets = commands.add_parser("tickets", help="list, show and export tickets").add_subparsers(
        required=True, metavar="ACTION"
    )
    add_ticket_commands(tickets, command)

    inbound = commands.add_parser("inbound", help="the inbound spool").add_subparsers(required=True, metavar="ACTION")
    add_inbound_commands(inbound, command)
    outbox = commands.add_parser("outbox", help="mail the gateway sends").add_subparsers(
        required=True, metavar="ACTION"
    )
    add_outbox_commands(outbox, command)
    attachments = commands.add_parser("attachments", help="the files customers and agents sent").add_subparsers(
        required=True, metavar="ACTION"
    )
    add_attachment_commands(attachments, command)
    return parser


async def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        await serve(settings)
    except TemplateCheckError as problem:
        log.error("%s", problem)
        return exit_codes.USAGE
    except OSError as error:
        where = error.filename or f"{settings.smtp.host}:{settings.smtp.port}"  # [metrics] names itself
        log.error("cannot listen on %s: %s", where, error.strerror)
        return exit_codes.TEMPFAIL
    return exit_codes.OK


async def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    unknown = [address for address in args.recipient if settings.mailbox_for(address) is None]
    if unknown:
        print(f"ticket-gateway: unknown recipient(s): {', '.join(unknown)}", file=sys.stderr)
        return exit_codes.NOUSER
    raw = sys.stdin.buffer.read()
    if len(raw) > settings.smtp.max_message_size:
        print(
            f"ticket-gateway: message is {len(raw)} bytes, over smtp.max_message_size"
            f" ({settings.smtp.max_message_size})",
            file=sys.stderr,
        )
        return exit_codes.DATAERR
    try:
        async with open_pipeline(settings) as pipeline:
            spool_id = await pipeline.spool.add(args.sender, args.recipient, "stdin", raw)
            entry = await pipeline.spool.claim(spool_id)
            if entry is not None:  # else a running daemon took it first: it is in good hands
                await pipeline.process(entry)
            print(f"queued as {spool_id}: {await pipeline.spool.status_of(spool_id)}")
    except sqlite3.Error as error:  # busy, locked or full: the MTA retries; else an operator must look
        if is_temporary(error):
            print(f"ticket-gateway: database unavailable, try again later: {error}", file=sys.stderr)
            return exit_codes.TEMPFAIL
        print(f"ticket-gateway: database error ({settings.database.path}): {error}", file=sys.stderr)
        return exit_codes.SOFTWARE
    return exit_codes.OK


async def run_check_config(settings: Settings, args: argparse.Namespace) -> int:
    try:
        Renderer(settings, SystemClock()).check()
    except TemplateCheckError as problem:
        print(f"ticket-gateway: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    print(json.dumps(settings.masked(), indent=2, ensure_ascii=False))
    return exit_codes.OK
