"""The spool's own SQLite file, `<database>.spool`, beside the desk's: every accepted mail,
raw, with its envelope, and the IMAP messages already taken in.

Its writers are the listener, `ingest` and IMAP intake (and retention, which deletes only
mail the desk has finished with), under their own flock `<database>.spool.lock`: a spool
commit, and the 250 waiting for it, never waits for the desk's transactions. The desk's
connections see it read-only, attached as `intake`; the desk keeps what became of each
mail in its own `spool` table, copied from here (`IMPORT`) up to the watermark kept in
`counters` ('spool_imported'), in the same transactions as the ticket changes. No
transaction ever spans the two files.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
ATTACHED = "intake"
WATERMARK = "spool_imported"

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_tos TEXT NOT NULL,            -- JSON list of envelope recipients
    peer TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,             -- of the raw mail, in bytes
    error TEXT,                        -- set by intake: kept raw as failed, with this reason
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_raw (
    id INTEGER PRIMARY KEY REFERENCES spool (id) ON DELETE CASCADE,
    raw BLOB NOT NULL
);
-- The IMAP messages already in the spool, by their server identity (RFC 3501 §2.3.1.1:
-- a UID names one message only while UIDVALIDITY stays): a message spooled but not yet
-- moved when the daemon stopped is moved after a restart, not spooled twice. The row
-- outlives the spool row retention purges (spool_id NULL): the UID stays known.
CREATE TABLE IF NOT EXISTS imap_seen (
    mailbox TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    spool_id INTEGER REFERENCES spool (id) ON DELETE SET NULL,
    PRIMARY KEY (mailbox, folder, uidvalidity, uid)
) WITHOUT ROWID;
"""


def _new_rows(desk: str, spool: str) -> str:
    """Mail the desk has not seen yet."""
    return f"FROM {spool}.spool WHERE id > (SELECT value FROM {desk}.counters WHERE name = '{WATERMARK}')"


# Mail new to the desk, as it enters the desk's `spool` table (queued, or failed with
# intake's reason); bounded, so a long backlog is taken a slice at a time.
IMPORT = (
    "INSERT INTO main.spool (id, received_at, mail_from, rcpt_tos, peer, size, status, error, updated_at)"
    " SELECT id, received_at, mail_from, rcpt_tos, peer, size,"
    " CASE WHEN error IS NULL THEN 'queued' ELSE 'failed' END, error, received_at"
    f" {_new_rows('main', ATTACHED)} ORDER BY id LIMIT 1000"
)
ADVANCE = (
    "UPDATE main.counters SET value = max(value, coalesce((SELECT max(id) FROM main.spool), 0))"
    f" WHERE name = '{WATERMARK}'"
)


def _inbound_view(desk: str, spool: str) -> str:
    """What `inbound list`, `status`, the metrics and the listener's backlog read: the
    desk's rows and the mail not yet copied to it, queued (or failed by intake) as it will be."""
    return (
        "CREATE TEMP VIEW IF NOT EXISTS inbound AS"
        " SELECT id, received_at, mail_from, rcpt_tos, peer, size, status, attempts, outcome, error, decision,"
        f" updated_at FROM {desk}.spool UNION ALL"
        " SELECT id, received_at, mail_from, rcpt_tos, peer, size,"
        " CASE WHEN error IS NULL THEN 'queued' ELSE 'failed' END, 0, NULL, error, NULL, received_at"
        f" {_new_rows(desk, spool)}"
    )


def spool_path(database: Path) -> Path:
    return database.with_name(database.name + ".spool")


def read_only_uri(path: Path) -> str:
    # mode=ro: SQLite opens the file read-only and never creates it (SQLite URI filenames).
    return f"{path.resolve().as_uri()}?mode=ro"


class SpoolFileError(Exception):
    """The spool file does not go with its desk: one file restored or moved without the other."""


def check_beside_desk(path: Path) -> None:
    """Before the spool file at `path` is created or read: a desk that has taken mail from
    a spool file needs that file, at least as far along. A new or older file would give
    new mail ids the desk has already taken as done: accepted, never processed, and then
    purged with the old mail's envelope."""
    desk = path.with_name(path.name.removesuffix(".spool"))
    taken = _read_number(desk, f"SELECT value FROM counters WHERE name = '{WATERMARK}'")
    if not taken:
        return
    restore = "restore both files of one backup (FILE and FILE.spool, docs/operating.md)"
    if not path.is_file():
        raise SpoolFileError(f"{path} is missing, but {desk} has taken mail up to id {taken} from it: {restore}")
    reached = _read_number(path, "SELECT seq FROM sqlite_sequence WHERE name = 'spool'")
    if reached < taken:
        raise SpoolFileError(
            f"{path} holds mail up to id {reached}, but {desk} has taken mail up to id {taken} from it: {restore}"
        )


def _read_number(path: Path, query: str) -> int:
    """The first column of `query`'s row in the file at `path`; 0 without the file, the
    table or the row."""
    if not path.is_file():
        return 0
    connection = sqlite3.connect(read_only_uri(path), uri=True)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        row = connection.execute(query).fetchone()
    except sqlite3.OperationalError as error:  # no such table: a desk from before migration 5
        if "no such table" not in str(error):
            raise
        return 0
    except sqlite3.DatabaseError:  # not a database at all: what opens it next says so, by name
        return 0
    finally:
        connection.close()
    return int(row[0]) if row else 0


def migrate_spool(path: Path) -> None:
    """Create the spool file's tables if they are not there (WAL, as every connection uses)."""
    check_beside_desk(path)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        if int(connection.execute("PRAGMA user_version").fetchone()[0]) >= SCHEMA_VERSION:
            return
        # Only possible before the first table exists: retention hands freed pages back.
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()


def attach(connection: sqlite3.Connection, path: Path) -> None:
    """On a desk connection (opened with uri=True): the spool file, read-only, as `intake`,
    and the `inbound` view over both."""
    connection.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (read_only_uri(spool_path(path)),))
    connection.execute(_inbound_view("main", ATTACHED))


def attach_desk(connection: sqlite3.Connection, path: Path) -> None:
    """On the spool file's connection (the listener's): its desk, read-only, as `desk`, for
    the `inbound` view (the listener's backlog). A read there never waits for the desk's
    writer (WAL), and the spool's commits take no lock on it."""
    connection.execute("ATTACH DATABASE ? AS desk", (read_only_uri(path.with_name(path.name.removesuffix(".spool"))),))
    connection.execute(_inbound_view("desk", "main"))


def move_out_of_desk(desk: sqlite3.Connection) -> None:
    """Migration 5 of the desk, inside its transaction: copy every spool row's envelope and
    raw mail, and the IMAP UIDs, into the spool file (committed there first, in batches,
    each row once however often this is interrupted and run again), then drop them here.
    The desk's `spool` table stays: what became of each mail."""
    [(_, _, desk_file)] = [row for row in desk.execute("PRAGMA database_list") if row[1] == "main"]
    path = spool_path(Path(desk_file))
    migrate_spool(path)
    target = sqlite3.connect(path, isolation_level=None)
    try:
        _copy(desk, target)
    finally:
        target.close()
    [(sequence,)] = desk.execute("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'spool'), 0)")
    desk.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (WATERMARK, sequence))
    desk.execute("DROP TABLE spool_raw")
    desk.execute("DROP TABLE imap_seen")


def _copy(desk: sqlite3.Connection, target: sqlite3.Connection) -> None:
    after = 0
    while True:
        rows = desk.execute(
            "SELECT id, received_at, mail_from, rcpt_tos, peer, size, CASE WHEN status = 'failed' THEN error END,"
            " updated_at FROM spool WHERE id > ? ORDER BY id LIMIT 50",
            (after,),
        ).fetchall()
        target.execute("BEGIN IMMEDIATE")
        try:
            for envelope in rows:
                target.execute("INSERT OR IGNORE INTO spool VALUES (?, ?, ?, ?, ?, ?, ?, ?)", envelope)
                _same_mail(target, envelope)
                # One raw mail in memory at a time: fifty of 25 MB would not fit everywhere.
                for (raw,) in desk.execute("SELECT raw FROM spool_raw WHERE id = ?", (envelope[0],)):
                    target.execute("INSERT OR IGNORE INTO spool_raw (id, raw) VALUES (?, ?)", (envelope[0], raw))
            if not rows:
                target.executemany(
                    "INSERT OR IGNORE INTO imap_seen VALUES (?, ?, ?, ?, ?)",
                    desk.execute("SELECT mailbox, folder, uidvalidity, uid, spool_id FROM imap_seen").fetchall(),
                )
                # New mail's ids continue the desk's: none is ever below the watermark.
                target.execute("DELETE FROM sqlite_sequence WHERE name = 'spool'")
                target.execute(
                    "INSERT INTO sqlite_sequence (name, seq)"
                    " SELECT 'spool', max(coalesce((SELECT max(id) FROM spool), 0), ?)",
                    (desk.execute("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'spool'), 0)")
                     .fetchone()[0],),
                )  # fmt: skip
            target.execute("COMMIT")
        except BaseException:
            target.execute("ROLLBACK")
            raise
        if not rows:
            return
        after = rows[-1][0]


def _same_mail(target: sqlite3.Connection, envelope: tuple[Any, ...]) -> None:
    """The spool file's row for this id is this mail: copied now or by an interrupted run,
    and not another install's (a spool file left beside a restored backup)."""
    spool_id, received_at, size = envelope[0], envelope[1], envelope[5]
    kept = target.execute("SELECT received_at, size FROM spool WHERE id = ?", (spool_id,)).fetchone()
    if kept != (received_at, size):
        [(_, _, path)] = [row for row in target.execute("PRAGMA database_list") if row[1] == "main"]
        raise SpoolFileError(
            f"{path} already holds another mail as id {spool_id}: it belongs with another copy of the"
            " database; move it away and start again (docs/operating.md, restoring a backup)"
        )
