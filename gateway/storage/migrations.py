"""The schema's versions: numbered migrations, each applied once, in order, in a transaction.

The database's version is `PRAGMA user_version` (a number in the file's header, written in
the same transaction as the tables, so a migration is applied wholly or not at all). Every
process that writes (the daemon, `ingest`, the CLI's writing commands) brings the file up to
`LATEST` when it opens it; `ticket-gateway migrate` does the same and says what it applied.
Commands that only read never migrate: a file behind `LATEST` makes them say "run
ticket-gateway migrate". A file ahead of `LATEST` (written by a newer release) is refused
by everyone with both versions named: an older program must not write tables it does not
know.

A database from before versions existed (user_version 0 but the tables there) is version 1:
migration 1 is that schema with CREATE … IF NOT EXISTS, so on such a file it creates nothing
and only records the version.

To add a migration: append `Migration(N, "what it does", (statement, …))` to MIGRATIONS
with the next number (or a function of the connection, for work SQL alone cannot express),
and never edit one already released: databases out there have applied it. For example:

    Migration(4, "tickets.channel: where the ticket came from",
              ("ALTER TABLE tickets ADD COLUMN channel TEXT",)),

then add a row to the upgrade test (tests/test_migrations.py) that reads the new column.
Statements run inside BEGIN IMMEDIATE … COMMIT: nothing that cannot run in a transaction
(VACUUM, PRAGMA journal_mode) belongs in one.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.storage.schema import SCHEMA
from gateway.storage.spool_file import move_out_of_desk

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    steps: tuple[str, ...] | Callable[[sqlite3.Connection], None]

    def apply(self, connection: sqlite3.Connection) -> None:
        if callable(self.steps):
            self.steps(connection)
            return
        for statement in self.steps:
            connection.execute(statement)


def _schema_of_version_1(connection: sqlite3.Connection) -> None:
    # executescript would COMMIT the open transaction first: run the script's statements
    # one by one instead (sqlite3.complete_statement finds where each ends).
    for statement in _statements(SCHEMA):
        connection.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the tables: spool, tickets, messages, attachments, outbox", _schema_of_version_1),
    Migration(
        2,
        "indexes that retention (ticket-gateway purge) deletes by",
        (
            # Finished inbound mail by age: what [retention] inbound_days purges.
            "CREATE INDEX IF NOT EXISTS spool_finished ON spool (received_at) WHERE status IN ('done', 'ignored')",
            # Sent mail by age: what [retention] outbox_days purges.
            "CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at) WHERE status = 'sent'",
            # Deleting a spool row makes SQLite look for messages pointing at it (the foreign
            # key): without an index, a scan of every message for every row deleted.
            "CREATE INDEX IF NOT EXISTS messages_spool ON messages (spool_id) WHERE spool_id IS NOT NULL",
        ),
    ),
    # What the desk decided (desk/decide.describe), in one line, for `inbound list`.
    Migration(3, "spool.decision: what the desk decided", ("ALTER TABLE spool ADD COLUMN decision TEXT",)),
    # The IMAP messages already in the spool, by their server identity (RFC 3501 §2.3.1.1:
    # a UID names one message only while UIDVALIDITY stays): a message spooled but not yet
    # moved when the daemon stopped is moved after a restart, not spooled twice. The row
    # outlives the spool row retention purges (spool_id NULL): the UID stays known.
    Migration(
        4,
        "imap_seen: IMAP messages already spooled",
        (
            "CREATE TABLE IF NOT EXISTS imap_seen ("
            " mailbox TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,"
            " spool_id INTEGER REFERENCES spool (id) ON DELETE SET NULL,"
            " PRIMARY KEY (mailbox, folder, uidvalidity, uid)) WITHOUT ROWID",
        ),
    ),
    # The listener's commits (and its 250s) wait for no desk transaction: raw mail and the
    # IMAP UIDs go to the spool file of their own (storage/spool_file.py); what became of
    # each mail stays here, in `spool`, written with the ticket changes.
    Migration(5, "the spool's raw mail in a file of its own (<database>.spool)", move_out_of_desk),
)
LATEST = MIGRATIONS[-1].version
RECOGNISED = "the first release's tables, found in place and kept as they are"


class SchemaVersionError(Exception):
    """The database's version is not the one this program works with."""


class SchemaTooNewError(SchemaVersionError):
    """Written by a newer release of ticket-gateway: never touched by this one."""


class SchemaTooOldError(SchemaVersionError):
    """Behind LATEST, met by a command that only reads: `ticket-gateway migrate` first."""


def too_new(path: Path, version: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"{path}: the database is at schema version {version}, newer than this ticket-gateway"
        f" (schema version {LATEST}); run the release that wrote it, or restore a backup"
    )


def check_readable(path: Path, version: int) -> None:
    """For commands that only read: the file must be exactly at LATEST."""
    if version > LATEST:
        raise too_new(path, version)
    if version < LATEST:
        raise SchemaTooOldError(
            f"{path}: the database is at schema version {version}, this ticket-gateway needs"
            f" {LATEST}: run ticket-gateway migrate (or start the daemon)"
        )


def migrate(path: Path) -> list[tuple[int, str]]:
    """Bring the file at `path` up to LATEST; returns the versions applied, each with what
    it did (none when current: then it costs one read of the header). Raises SchemaTooNewError."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _version(connection)
        if version > LATEST:
            raise too_new(path, version)
        if version == LATEST:
            return []
        recognised = version == 0 and _has_tables(connection)
        if version == 0 and not recognised:
            # Only possible before the first table exists; lets retention hand freed pages
            # back to the file system (PRAGMA incremental_vacuum) instead of keeping them.
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        applied = [migration for migration in MIGRATIONS if _apply(connection, path, migration)]
        return [
            (migration.version, RECOGNISED if recognised and migration.version == 1 else migration.description)
            for migration in applied
        ]
    finally:
        connection.close()


def _apply(connection: sqlite3.Connection, path: Path, migration: Migration) -> bool:
    """One migration in a transaction of its own, unless another process applied it first."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _version(connection)  # read again under the write lock
        if version > LATEST:
            raise too_new(path, version)
        if version >= migration.version:
            connection.execute("ROLLBACK")
            return False
        migration.apply(connection)
        connection.execute(f"PRAGMA user_version = {migration.version:d}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    log.info("database %s: schema version %d: %s", path, migration.version, migration.description)
    return True


def schema_version(connection: sqlite3.Connection) -> int:
    return _version(connection)


def _version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def _has_tables(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None


def _statements(script: str) -> list[str]:
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return [statement for statement in statements if statement]
