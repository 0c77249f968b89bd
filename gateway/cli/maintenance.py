"""`ticket-gateway migrate`, `purge` and `backup`: keeping the database over the years.

`migrate` brings the schema up to this release's version (the daemon does the same at
start, see storage/migrations.py) and says what it applied. `purge` deletes what
[retention] no longer keeps, in small transactions, while the daemon runs. `backup` copies
the database while the daemon runs, through SQLite's online backup API: attachments, the
signing secret and everything else the desk knows live in that one file, and the raw mail
in the spool file beside it (storage/spool_file.py), copied beside the backup.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from gateway.cli import exit_codes
from gateway.clock import SystemClock
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.migrations import LATEST, migrate, schema_version
from gateway.storage.retention import purge
from gateway.storage.spool_file import spool_path

BACKUP_MODE = 0o600  # the copy holds every customer's mail and the signing secret


def add_maintenance_commands(command: Any) -> None:
    migrating = command("migrate", run_migrate, "bring the database's schema up to this release's version")
    vacuum_help = "also rebuild the file once, so that purge can shrink it (stop the daemon first)"
    migrating.add_argument("--vacuum", action="store_true", help=vacuum_help)
    purging = command("purge", run_purge, "delete what [retention] no longer keeps")
    purging.add_argument("--dry-run", action="store_true", help="only count what would go")
    purging.add_argument("--json", action="store_true", help="print JSON")
    backup = command("backup", run_backup, "copy the database, consistent, while the daemon runs")
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


async def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.database.path
    path.parent.mkdir(parents=True, exist_ok=True)
    applied = migrate(path)
    for version, what in applied:
        print(f"schema version {version}: {what}")
    if not applied:
        print(f"{path}: schema version {LATEST}, nothing to do")
    if args.vacuum:
        _enable_incremental_vacuum(path)
        print(f"{path}: rebuilt with auto_vacuum = INCREMENTAL: purge now hands freed space back")
    return exit_codes.OK


def _enable_incremental_vacuum(path: Path) -> None:
    """auto_vacuum changes on a database with tables only through a VACUUM, which rewrites
    the whole file (holding the write lock throughout, and needing its size again in free
    disk): a one-off step an admin takes with the daemon stopped, not a migration run at
    every start."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("VACUUM")
    finally:
        connection.close()


async def run_purge(settings: Settings, args: argparse.Namespace) -> int:
    retention = settings.retention
    database = await Database.open(settings.database.path, durable=False)
    try:
        purged = await purge(database, SystemClock().now(), retention.inbound_days, retention.outbox_days,
                             dry_run=args.dry_run)  # fmt: skip
    finally:
        await database.close()
    if args.json:
        print(json.dumps({**purged.as_dict(), "dry_run": args.dry_run}))
        return exit_codes.OK
    verb = "would purge" if args.dry_run else "purged"
    print(f"{verb} {purged.inbound_mail} inbound mail (raw, over {retention.inbound_days or '∞'} days)")
    print(f"{verb} {purged.outbox_mail} outbox mail (sent, over {retention.outbox_days or '∞'} days)")
    if not args.dry_run:
        print(f"handed back {purged.pages_freed} free pages to the file system")
    if not purged.auto_vacuum:
        print("(freed space is reused by new data but the file does not shrink:"
              " see ticket-gateway migrate --vacuum)", file=sys.stderr)  # fmt: skip
    return exit_codes.OK


async def run_backup(settings: Settings, args: argparse.Namespace) -> int:
    source_path, target = settings.database.path, args.file
    if not source_path.is_file():
        print(f"ticket-gateway: no database at {source_path} (check [database] path)", file=sys.stderr)
        return exit_codes.NOINPUT
    if (target.exists() or spool_path(target).exists()) and not args.force:
        print(f"ticket-gateway: {target} exists; give --force to overwrite it", file=sys.stderr)
        return exit_codes.USAGE
    # The desk first, then the spool file: the later copy holds every mail the earlier one
    # has taken from it (the spool only grows, but for mail the desk has finished with).
    copies = [(source_path, target)]
    if spool_path(source_path).is_file():
        copies.append((spool_path(source_path), spool_path(target)))
    partials = [(source, copy.with_name(f".{copy.name}.part"), copy) for source, copy in copies]
    try:
        pages = [_copy(source, partial) for source, partial, _ in partials]
        for _, partial, copy in reversed(partials):  # FILE last: under its name, it is whole
            os.replace(partial, copy)
    finally:
        for _, partial, _ in partials:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    print(f"{target}: {pages[0]} pages, {target.stat().st_size} bytes, schema version {_version_of(target)}")
    if len(pages) > 1:
        print(f"{spool_path(target)}: {pages[1]} pages, {spool_path(target).stat().st_size} bytes (the raw mail)")
    return exit_codes.OK


def _copy(source_path: Path, target: Path) -> int:
    """SQLite's online backup, in one step: a single read transaction, which in WAL mode
    never blocks a writer (the listener commits on while it runs), and sees one moment of
    the database. Copied in several steps instead, a write between two steps by any other
    connection makes SQLite start the copy over (sqlite3_backup_step), so under a steady
    flow of mail a stepped backup might never end."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BACKUP_MODE)
    os.close(descriptor)
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.execute("PRAGMA busy_timeout = 5000")
        source.backup(copy)
        pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
        # The copy stands alone: a single file, no -wal beside it to lose in transit.
        copy.execute("PRAGMA journal_mode = DELETE")
        return pages
    finally:
        copy.close()
        source.close()


def _version_of(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return schema_version(connection)
    finally:
        connection.close()
