"""`ticket-gateway tickets …`: list, show, export and close-stale, for people and programs."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from gateway.cli import exit_codes
from gateway.cli.read_only import open_read_only
from gateway.clock import timestamp
from gateway.desk.pipeline import open_pipeline
from gateway.desk.queries import EXPORT_COLUMNS, TicketFilter
from gateway.model import Priority, Status, TicketType
from gateway.settings import Settings

FILTERS = ("status", "priority", "type", "country", "brand", "product", "company", "fiscal_id")
DATE_FILTERS = ("created_from", "created_to", "resolved_from", "resolved_to")


def add_ticket_commands(tickets: Any, command: Any) -> None:
    listing = command("list", run_list, "list tickets (filters as for export)", tickets)
    _add_filters(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = command("show", run_show, "show one ticket, its history and its conversation", tickets)
    show.add_argument("number")
    show.add_argument("--json", action="store_true", help="print JSON")
    export = command("export", run_export, "write tickets as CSV, one row each, with a header row", tickets)
    export.add_argument("--format", choices=["csv"], default="csv")
    _add_filters(export)
    stale = command("close-stale", run_close_stale, "close tickets resolved longer than auto_close_hours", tickets)
    stale.add_argument("--now", type=_moment, metavar="ISO-TIME", help="act as of this time (default: now)")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", choices=[s.value for s in Status])
    parser.add_argument("--priority", choices=[p.value for p in Priority])
    parser.add_argument("--type", choices=[t.value for t in TicketType])
    for name in ("country", "brand", "product", "company"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--fiscal-id", dest="fiscal_id")
    for name in DATE_FILTERS:
        bound = "from (inclusive)" if name.endswith("from") else "up to (a date: inclusive)"
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="ISO-DATE", help=bound, type=_date)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date or time: {value!r}; expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def _date(value: str) -> str:
    """A date filter, checked while the arguments are read: a bad one is a usage error
    naming the format (exit 2), not a traceback; the text is kept ("a date alone")."""
    _moment(value)
    return value


def ticket_filter(args: argparse.Namespace) -> TicketFilter:
    values: dict[str, Any] = {name: getattr(args, name) for name in FILTERS}
    for name in DATE_FILTERS:
        given = getattr(args, name)
        values[name] = None if given is None else _bound(given, upper=name.endswith("_to"))
    return TicketFilter(**values)


def _bound(given: str, upper: bool) -> str:
    """A stored-format time; a date alone as an upper bound includes that whole day."""
    moment = _moment(given)
    if upper and len(given) == len("2026-11-30"):
        moment += timedelta(days=1)
    return timestamp(moment)


async def run_list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        tickets = await reader.queries.list_tickets(ticket_filter(args))
    if args.json:
        print(json.dumps(tickets, indent=2, ensure_ascii=False))
        return exit_codes.OK
    for ticket in tickets:
        status, priority = status_label(settings, str(ticket["status"])), settings.label(str(ticket["priority"]))
        print(f"{ticket['number']}  {status:<22} {priority:<8} {ticket['requester']!s:<36} {ticket['subject']}")
    print(f"{len(tickets)} ticket(s)", file=sys.stderr)
    return exit_codes.OK


def status_label(settings: Settings, status: str, language: str = "es") -> str:
    """A status as the desk labels it, with its key when the desk gives another status the
    same words (simple.toml: resolved and closed both read "Cerrado")."""
    label = settings.label(status, language)
    shared = any(settings.label(other, language) == label for other in Status if other != status)
    return f"{label} ({status})" if shared else label


async def run_show(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        ticket = await reader.queries.show_ticket(args.number.upper())
    if ticket is None:
        print(f"ticket-gateway: no ticket {args.number}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    if args.json:
        print(json.dumps(ticket, indent=2, ensure_ascii=False))
    else:
        _print_ticket(settings, ticket)
    return exit_codes.OK


def _print_ticket(settings: Settings, ticket: dict[str, Any]) -> None:
    print(f"{ticket['number']}: {ticket['subject']}")
    print(f"  status: {status_label(settings, str(ticket['status']))}")
    for key in ("priority", "type"):
        print(f"  {key}: {settings.label(str(ticket[key]))}")
    for key in ("requester", "cc", "mailbox", "country", "brand", "product", "company", "fiscal_id", "phone",
                "assignee", "incident", "follow_up_of", "created_at", "first_response_at", "resolved_at",
                "closed_at", "rating"):  # fmt: skip
        if ticket.get(key) not in (None, "", []):
            flag = " (not valid: kept as written)" if key == "fiscal_id" and ticket["fiscal_id_valid"] is False else ""
            print(f"  {key}: {ticket[key]}{flag}")
    for change in ticket["history"]:
        print(f"  {change['at']}  {change['field']}: {change['old'] or '-'} → {change['new']}  by {change['by']}")
    for message in ticket["messages"]:
        shown = "" if message["visibility"] == "public" else f" [{message['visibility']}: {message['note']}]"
        print(f"\n--- {message['date']} {message['direction']} from {message['from']}{shown}")
        print(message["body"].rstrip())
        for attachment in message["attachments"]:
            print(f"  [{attachment['filename']} {attachment['content_type']} {attachment['size']} bytes]")


async def run_export(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        rows = await reader.queries.export_rows(ticket_filter(args))
    writer = csv.DictWriter(sys.stdout, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return exit_codes.OK


async def run_close_stale(settings: Settings, args: argparse.Namespace) -> int:
    async with open_pipeline(settings) as pipeline:
        closed = await pipeline.close_stale(args.now or pipeline.clock.now())
    print(f"closed {len(closed)} ticket(s){': ' + ', '.join(closed) if closed else ''}")
    return exit_codes.OK
