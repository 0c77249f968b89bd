"""`ticket-gateway attachments …`: the files of a ticket, and any one of them byte for byte.

Read-only, like `tickets show`: a path that holds no database is an error, never a new
one. A file comes out in pieces straight from SQLite's blob handle, so a 25 MB attachment
is never held whole; with -o it is written beside the target and renamed into place, so an
interrupted copy never leaves a truncated file under the name asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from gateway.cli import exit_codes
from gateway.cli.read_only import open_read_only
from gateway.settings import Settings

LIST_COLUMNS = ("id", "date", "from", "filename", "content_type", "size", "sha256", "message")


def add_attachment_commands(attachments: Any, command: Any) -> None:
    listing = command("list", run_list, "list the files of a ticket's messages, with their ids", attachments)
    listing.add_argument("number", help="the ticket's number, e.g. TK-000123")
    listing.add_argument("--json", action="store_true", help="print JSON")
    get = command("get", run_get, "write one stored file exactly as received (standard output without -o)",
                  attachments)  # fmt: skip
    get.add_argument("id", type=int, help="the attachment's id (attachments list, tickets show --json)")
    get.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead")


async def run_list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        files = await reader.queries.attachments_of(args.number.upper())
    if files is None:
        print(f"ticket-gateway: no ticket {args.number}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    if args.json:
        print(json.dumps(files, indent=2, ensure_ascii=False))
        return exit_codes.OK
    for file in files:
        print("  ".join(str(file[column]) for column in LIST_COLUMNS))
    print(f"{len(files)} attachment(s)", file=sys.stderr)
    return exit_codes.OK


async def run_get(settings: Settings, args: argparse.Namespace) -> int:
    async with open_read_only(settings) as reader:
        file = await reader.queries.attachment(args.id)
        if file is None:
            print(f"ticket-gateway: no attachment {args.id} (see: ticket-gateway attachments list NUMBER)",
                  file=sys.stderr)  # fmt: skip
            return exit_codes.NOT_FOUND
        sha256 = str(file["sha256"])
        if args.output is None:
            found = await reader.queries.read_file(sha256, sys.stdout.buffer.write)
            sys.stdout.buffer.flush()
        else:
            found = await _write_file(args.output, lambda out: reader.queries.read_file(sha256, out.write))
    if not found:
        print(f"ticket-gateway: the content of attachment {args.id} is missing from the database", file=sys.stderr)
        return exit_codes.SOFTWARE
    if args.output is not None:
        print(f"{args.output}: {file['filename']} ({file['size']} bytes) of {file['ticket']}", file=sys.stderr)
    return exit_codes.OK


async def _write_file(target: Path, copy: Callable[[BinaryIO], Awaitable[bool]]) -> bool:
    partial = target.with_name(f".{target.name}.part")
    try:
        with partial.open("wb") as out:
            found = await copy(out)
            _flush(out)
        if found:
            os.replace(partial, target)
        return found
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _flush(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
