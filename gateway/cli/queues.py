"""`ticket-gateway inbound …` and `outbox …`: the two queues an operator looks into."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from gateway.cli import exit_codes
from gateway.cli.read_only import open_read_only
from gateway.desk.pipeline import open_pipeline
from gateway.inbound.spool import STATUSES as SPOOL_STATUSES
from gateway.inbound.spool import SpoolSummary
from gateway.outbound.outbox import STATUSES as OUTBOX_STATUSES
from gateway.outbound.outbox import OutboxSummary
from gateway.settings import Settings


def add_inbound_commands(inbound: Any, command: Any) -> None:
    listing = command("list", run_inbound_list, "list spooled mail and what became of it", inbound)
    listing.add_argument("--status", choices=SPOOL_STATUSES)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = command("show", run_inbound_show, "write one spooled mail's raw bytes to standard output", inbound)
    show.add_argument("id", type=int, metavar="ID")
    _add_retry(command("retry", run_inbound_retry, "re-run failed mail through the pipeline", inbound))


def add_outbox_commands(outbox: Any, command: Any) -> None:
    listing = command("list", run_outbox_list, "list outgoing mail and what the relay answered", outbox)
    listing.add_argument("--status", choices=OUTBOX_STATUSES)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = command("show", run_outbox_show, "write one outgoing mail, as rendered, to standard output", outbox)
    show.add_argument("id", type=int, metavar="ID")
    retry = command("retry", run_outbox_retry, "send failed and deferred mail now (postqueue -f)", outbox)
    _add_retry(retry, "every failed and deferred mail")


def _add_retry(parser: argparse.ArgumentParser, everything: str = "every failed mail") -> None:
    parser.add_argument("ids", nargs="*", type=int, metavar="ID")
    parser.add_argument("--all", action="store_true", help=everything)


async def run_inbound_list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        entries = await reader.spool.summaries(args.status)
    if args.json:
        return _print_json(entries)
    for entry in entries:
        detail = entry.error if entry.status == "failed" else entry.outcome
        print(
            f"{entry.id:>6}  {entry.status:<10} {entry.received_at}  {entry.size:>8} B"
            f"  from <{entry.mail_from}>  {detail or ''}"
        )
        if entry.decision and entry.status != "failed":
            print(f"{'':>8}decided: {entry.decision}")
    print(f"{len(entries)} message(s)", file=sys.stderr)
    return exit_codes.OK


async def run_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        entries = await reader.outbox.summaries(args.status)
    if args.json:
        return _print_json(entries)
    for entry in entries:
        when = entry.sent_at if entry.status == "sent" else f"next {entry.next_attempt_at}"
        print(
            f"{entry.id:>6}  {entry.status:<7} {entry.ticket or '-':<10} {entry.template:<17}"
            f" to {', '.join(entry.recipients)}  tries {entry.attempts}  {when}  {entry.relay_reply or ''}"
        )
    print(f"{len(entries)} message(s)", file=sys.stderr)
    return exit_codes.OK


def _print_json(entries: Sequence[SpoolSummary | OutboxSummary]) -> int:
    print(json.dumps([dataclasses.asdict(entry) for entry in entries], indent=2, ensure_ascii=False))
    return exit_codes.OK


async def run_inbound_show(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        return _write_raw(await reader.spool.raw(args.id), f"no spooled mail {args.id}")


async def run_outbox_show(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        return _write_raw(await reader.outbox.raw(args.id), f"no outgoing mail {args.id}")


def _write_raw(raw: bytes | None, missing: str) -> int:
    if raw is None:
        print(f"ticket-gateway: {missing}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    sys.stdout.buffer.write(raw)
    return exit_codes.OK


async def run_inbound_retry(settings: Settings, args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        return _usage("inbound retry: give spool IDs or --all")
    async with open_pipeline(settings) as pipeline:
        requeued = await pipeline.spool.retry(None if args.all else args.ids)
        for spool_id in requeued:  # run now, so the operator sees what happens
            entry = await pipeline.spool.claim(spool_id)
            if entry is not None:
                await pipeline.process(entry)
            print(f"{spool_id}: {await pipeline.spool.status_of(spool_id)}")
    return _report_missing(args.ids, requeued)


async def run_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        return _usage("outbox retry: give outbox IDs or --all")
    async with open_pipeline(settings) as pipeline:
        requeued = await pipeline.outbox.retry(None if args.all else args.ids)
    for outbox_id in requeued:
        print(f"{outbox_id}: due now (a running daemon sends it within [pipeline] poll_seconds)")
    return _report_missing(args.ids, requeued)


def _usage(message: str) -> int:
    print(f"ticket-gateway: {message}", file=sys.stderr)
    return exit_codes.USAGE


def _report_missing(asked: list[int], requeued: list[int]) -> int:
    missing = sorted(set(asked) - set(requeued))
    if missing:
        print(f"ticket-gateway: not failed or not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    return exit_codes.OK
