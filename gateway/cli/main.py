"""The `ticket-gateway` command: builds the settings once, configures logging, dispatches.

Exit statuses follow sysexits.h where an MTA reads them (`ingest`, see cli/ingest.py): 0
stored, 65 data error, 67 unknown recipient, 75 anything else. A bad configuration or
command line exits 2 (75 for `ingest`); a command that only reads exits 66 (EX_NOINPUT)
when the configured path holds no database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

from gateway import __version__
from gateway.cli import exit_codes
from gateway.cli.attachments import add_attachment_commands
from gateway.cli.ingest import add_ingest_command, one_line
from gateway.cli.maintenance import add_maintenance_commands
from gateway.cli.postfix import add_postfix_commands, size_warning
from gateway.cli.queues import add_inbound_commands, add_outbox_commands
from gateway.cli.read_only import NoDatabaseError
from gateway.cli.status import add_status_command
from gateway.cli.tickets import add_ticket_commands
from gateway.clock import SystemClock
from gateway.daemon import serve
from gateway.outbound.render import Renderer, TemplateCheckError
from gateway.runtime.logs import configure_logging
from gateway.settings import ConfigError, Settings, config_path, load_settings
from gateway.storage.migrations import SchemaVersionError
from gateway.storage.spool_file import SpoolFileError

log = logging.getLogger("gateway")


class CommandLine(argparse.ArgumentParser):
    """argparse, except that for `ingest` a malformed command line (the MTA's pipe
    configuration, not the mail) exits 75 with one line, so the MTA keeps the mail."""

    def __init__(self, *args: Any, error_status: int = exit_codes.USAGE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_status = error_status

    def error(self, message: str) -> NoReturn:
        if self.error_status == exit_codes.USAGE:
            super().error(message)
        self.exit(self.error_status, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(exit_codes.TEMPFAIL if "ingest" in argv else exit_codes.USAGE).parse_args(argv)
    try:
        settings = load_settings(config_path(args.config))
    except ConfigError as error:
        status: int = getattr(args, "config_error_status", exit_codes.USAGE)  # `ingest`: 75, see cli/ingest.py
        print(f"ticket-gateway: {one_line(str(error)) if status == exit_codes.TEMPFAIL else error}", file=sys.stderr)
        return status
    configure_logging(settings.logging.level, settings.logging.format)
    command: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]] = args.command
    try:
        return asyncio.run(command(settings, args))
    except NoDatabaseError as error:
        print(f"ticket-gateway: {error}", file=sys.stderr)
        return exit_codes.NOINPUT
    except (SchemaVersionError, SpoolFileError) as error:  # files an admin must put right: MTAs retry meanwhile
        print(f"ticket-gateway: {error}", file=sys.stderr)
        return exit_codes.SCHEMA_VERSION
    except KeyboardInterrupt:
        return exit_codes.OK


def build_parser(error_status: int = exit_codes.USAGE) -> argparse.ArgumentParser:
    config_help = "TOML configuration file (default: $GATEWAY_CONFIG)"
    # --config may come before or after the command; the later one wins.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    parser = CommandLine(
        prog="ticket-gateway", description="Turns a support desk's email into tickets.", error_status=error_status
    )
    parser.add_argument("--config", metavar="PATH", default=None, help=config_help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[..., Awaitable[int]], help: str, parent: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, parents=[common], error_status=error_status
        )
        sub.set_defaults(command=handler)
        return sub

    command("serve", run_serve, "run the daemon: SMTP/LMTP listener and pipeline")
    add_ingest_command(commands, command)
    add_postfix_commands(commands, command)
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


async def run_check_config(settings: Settings, args: argparse.Namespace) -> int:
    try:
        Renderer(settings, SystemClock()).check()
    except TemplateCheckError as problem:
        print(f"ticket-gateway: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    if warning := size_warning(settings):
        print(f"ticket-gateway: warning: {warning}", file=sys.stderr)
    print(json.dumps(settings.masked(), indent=2, ensure_ascii=False))
    return exit_codes.OK
