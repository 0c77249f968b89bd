"""Upgrades: a database of the first release is brought up to date with its data kept; a
newer one is refused by everything; commands that only read never migrate."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from gateway.storage.migrations import LATEST, MIGRATIONS
from gateway.storage.spool_file import migrate_spool, spool_path
from tests.conftest import PROJECT, make_mail, run_cli

FIRST_RELEASE_SCHEMA = PROJECT / "tests" / "data" / "schema_v1.sql"
RAW = make_mail("Factura duplicada", message_id="<v1-mail@empresa.example>")
INGEST = ("--sender", "cliente@empresa.example", "--recipient", "soporte.latam@estela.example")
NOW = "2024-05-02T10:00:00.000+00:00"


def first_release_database(path: Path) -> None:
    """A database as the first release left it: its tables, a ticket with a message and an
    attachment, the raw mail, a notification sent; user_version 0."""
    with sqlite3.connect(path) as connection:
        connection.executescript(FIRST_RELEASE_SCHEMA.read_text())
        connection.execute(
            "INSERT INTO spool (id, received_at, mail_from, rcpt_tos, size, status, outcome, updated_at)"
            " VALUES (1, ?, 'cliente@empresa.example', '[\"soporte.latam@estela.example\"]', ?, 'done',"
            " 'new ticket', ?)",
            (NOW, len(RAW), NOW),
        )
        connection.execute("INSERT INTO spool_raw (id, raw) VALUES (1, ?)", (RAW,))
        connection.execute(
            "INSERT INTO tickets (id, number, subject, requester, mailbox, type, priority, status, created_at,"
            " updated_at) VALUES (1, 'TK-000007', 'Factura duplicada', 'cliente@empresa.example',"
            " 'soporte.latam@estela.example', 'request', 'medium', 'open', ?, ?)",
            (NOW, NOW),
        )
        connection.execute("UPDATE counters SET value = 7 WHERE name = 'ticket'")
        connection.execute(
            "INSERT INTO messages (id, ticket_id, spool_id, message_id, direction, author, body, created_at)"
            " VALUES (1, 1, 1, 'v1-mail@empresa.example', 'inbound', 'cliente@empresa.example', 'Hola', ?)",
            (NOW,),
        )
        connection.execute("INSERT INTO blobs (sha256, size, content) VALUES ('ab', 3, x'010203')")
        connection.execute(
            "INSERT INTO attachments (message_row, filename, content_type, size, sha256)"
            " VALUES (1, 'factura.pdf', 'application/pdf', 3, 'ab')"
        )
        connection.execute(
            "INSERT INTO outbox (ticket_id, template, message_id, envelope_from, recipients, raw, status,"
            " created_at, next_attempt_at, sent_at, updated_at) VALUES (1, 'ack', 'ack-1@estela.example',"
            " 'soporte.latam@estela.example', '[\"cliente@empresa.example\"]', x'41', 'sent', ?, ?, ?, ?)",
            (NOW, NOW, NOW, NOW),
        )
    assert user_version(path) == 0


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])


def index_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_first_release_database_is_migrated_and_keeps_its_data(config_path: Path) -> None:
    database = config_path.parent / "gateway.db"
    first_release_database(database)

    migrated = run_cli(config_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr.decode()
    lines = migrated.stdout.decode().splitlines()
    assert lines[0] == "schema version 1: the first release's tables, found in place and kept as they are"
    assert lines[1].startswith("schema version 2: indexes")
    assert lines[2].startswith("schema version 3: spool.decision")
    assert lines[3].startswith("schema version 4: imap_seen")
    assert lines[4].startswith("schema version 5: the spool's raw mail in a file of its own")
    assert user_version(database) == LATEST
    assert {"spool_finished", "outbox_sent", "messages_spool"} <= index_names(database)

    [ticket] = json.loads(run_cli(config_path, "tickets", "list", "--json").stdout)
    assert (ticket["number"], ticket["subject"]) == ("TK-000007", "Factura duplicada")
    assert run_cli(config_path, "inbound", "show", "1").stdout == RAW
    [attachment] = json.loads(run_cli(config_path, "attachments", "list", "TK-000007", "--json").stdout)
    assert attachment["filename"] == "factura.pdf"
    [sent] = json.loads(run_cli(config_path, "outbox", "list", "--json").stdout)
    assert sent["status"] == "sent" and sent["ticket"] == "TK-000007"

    # The new release writes into it as into its own: numbering goes on from the old counter.
    stored = run_cli(config_path, "ingest", *INGEST, stdin=make_mail("Otro"))
    assert stored.returncode == 0, stored.stderr.decode()
    numbers = [t["number"] for t in json.loads(run_cli(config_path, "tickets", "list", "--json").stdout)]
    assert sorted(numbers) == ["TK-000007", "TK-000008"]
    listed = run_cli(config_path, "inbound", "list").stdout.decode()  # the decision column, added by migration 3
    assert "decided: new ticket (no ticket token or known Message-ID)" in listed, listed

    again = run_cli(config_path, "migrate")
    assert again.stdout.decode().strip().endswith(f"schema version {LATEST}, nothing to do")


def test_commands_that_only_read_never_migrate(config_path: Path) -> None:
    database = config_path.parent / "gateway.db"
    first_release_database(database)
    for command in (["tickets", "list"], ["inbound", "list", "--json"], ["outbox", "list"]):
        result = run_cli(config_path, *command)
        assert result.returncode == 75, command
        assert b"run ticket-gateway migrate" in result.stderr
    assert user_version(database) == 0


def test_a_writing_command_migrates_on_its_way(config_path: Path) -> None:
    database = config_path.parent / "gateway.db"
    first_release_database(database)
    result = run_cli(config_path, "purge", "--dry-run")
    assert result.returncode == 0, result.stderr.decode()
    assert user_version(database) == LATEST


def test_a_database_from_a_newer_release_is_refused_and_left_alone(config_path: Path) -> None:
    database = config_path.parent / "gateway.db"
    assert run_cli(config_path, "migrate").returncode == 0  # a fresh one
    with sqlite3.connect(database) as connection:
        connection.execute(f"PRAGMA user_version = {LATEST + 1}")
    for command in (["serve"], ["migrate"], ["tickets", "list"], ["purge"]):
        result = run_cli(config_path, *command)  # serve returns: the daemon did not start
        assert result.returncode == 75, (command, result.stderr)
        message = result.stderr.decode()
        assert f"schema version {LATEST + 1}, newer than this ticket-gateway (schema version {LATEST})" in message
    ingested = run_cli(config_path, "ingest", *INGEST, stdin=make_mail("x"))
    assert ingested.returncode == 75  # the MTA keeps the mail until the right release runs
    assert user_version(database) == LATEST + 1


def test_a_new_database_is_at_the_latest_version_with_incremental_auto_vacuum(config_path: Path) -> None:
    database = config_path.parent / "gateway.db"
    result = run_cli(config_path, "migrate")
    assert [line.split(":")[0] for line in result.stdout.decode().splitlines()] == [
        f"schema version {version}" for version in range(1, LATEST + 1)
    ]
    assert user_version(database) == LATEST
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


def version_4_database(path: Path) -> None:
    """A database as the releases with the spool inside it left it (schema version 4): mail
    done, queued and failed, the newest (id 4) purged, an IMAP UID on record."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for migration in MIGRATIONS[:4]:
            connection.execute("BEGIN IMMEDIATE")
            migration.apply(connection)
            connection.execute(f"PRAGMA user_version = {migration.version:d}")
            connection.execute("COMMIT")
        for spool_id, status, error in ((1, "done", None), (2, "queued", None), (3, "failed", "ParseError: roto"),
                                        (4, "done", None)):  # fmt: skip
            connection.execute(
                "INSERT INTO spool (id, received_at, mail_from, rcpt_tos, size, status, error, updated_at)"
                " VALUES (?, ?, 'cliente@empresa.example', '[\"soporte.latam@estela.example\"]', ?, ?, ?, ?)",
                (spool_id, NOW, len(RAW), status, error, NOW),
            )
            connection.execute("INSERT INTO spool_raw (id, raw) VALUES (?, ?)", (spool_id, RAW + b"%d" % spool_id))
        connection.execute("DELETE FROM spool_raw WHERE id = 4")
        connection.execute("DELETE FROM spool WHERE id = 4")  # purged: its id is never given again
        connection.execute("INSERT INTO imap_seen VALUES ('soporte.latam@estela.example', 'INBOX', 7, 42, 2)")
    finally:
        connection.close()
    assert user_version(path) == 4


def interrupted_migration_5(path: Path) -> None:
    """Migration 5 cut off after it copied the spool out, before the desk's commit: the
    spool file holds the copies, the desk is still at version 4."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        MIGRATIONS[4].apply(connection)
        connection.execute("ROLLBACK")
    finally:
        connection.close()
    assert user_version(path) == 4


@pytest.mark.parametrize("interrupted", [False, True])
def test_the_spool_moves_out_of_the_desk_with_every_mail_once(config_path: Path, interrupted: bool) -> None:
    database = config_path.parent / "gateway.db"
    version_4_database(database)
    if interrupted:
        interrupted_migration_5(database)

    migrated = run_cli(config_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr.decode()
    assert user_version(database) == LATEST
    listed = json.loads(run_cli(config_path, "inbound", "list", "--json").stdout)
    assert [(e["id"], e["status"], e["error"]) for e in listed] == [
        (1, "done", None), (2, "queued", None), (3, "failed", "ParseError: roto")
    ]  # fmt: skip
    for spool_id in (1, 2, 3):
        assert run_cli(config_path, "inbound", "show", str(spool_id)).stdout == RAW + b"%d" % spool_id
    with sqlite3.connect(spool_path(database)) as connection:
        assert connection.execute("SELECT count(*) FROM spool").fetchone()[0] == 3
        assert connection.execute("SELECT uid, spool_id FROM imap_seen").fetchall() == [(42, 2)]
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {"spool_raw", "imap_seen"} & tables

    # New mail continues the ids past the purged one, and the queued mail is not lost.
    stored = run_cli(config_path, "ingest", *INGEST, stdin=make_mail("Otro"))
    assert stored.returncode == 0, stored.stderr.decode()
    assert stored.stdout.decode().startswith("queued as 5: done")
    retried = run_cli(config_path, "inbound", "retry", "3")
    assert retried.returncode == 0, retried.stderr.decode()
    statuses = {e["id"]: e["status"] for e in json.loads(run_cli(config_path, "inbound", "list", "--json").stdout)}
    assert statuses == {1: "done", 2: "queued", 3: "done", 5: "done"}


def test_a_desk_without_its_spool_file_or_with_an_older_one_is_refused(config_path: Path) -> None:
    """One file of a backup restored without the other: a new spool file would number new
    mail from 1, ids the desk has taken as done, and the mail would never become a ticket."""
    database = config_path.parent / "gateway.db"
    spool = spool_path(database)
    assert run_cli(config_path, "ingest", *INGEST, stdin=make_mail("Primero")).returncode == 0
    with contextlib.closing(sqlite3.connect(spool)) as connection:  # the mail into the file itself
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    older = spool.read_bytes()
    assert run_cli(config_path, "ingest", *INGEST, stdin=make_mail("Segundo")).returncode == 0

    spool.write_bytes(older)  # restored as docs/operating.md says, but from another backup
    for leftover in (Path(f"{spool}-wal"), Path(f"{spool}-shm")):
        leftover.unlink(missing_ok=True)
    refused = run_cli(config_path, "ingest", *INGEST, stdin=make_mail("Tercero"))
    assert refused.returncode == 75  # the MTA keeps the mail and retries
    assert f"{spool} holds mail up to id 1, but {database} has taken mail up to id 2" in refused.stderr.decode()

    spool.unlink()
    for command in (["ingest", *INGEST], ["inbound", "list"], ["status"]):
        result = run_cli(config_path, *command, stdin=make_mail("Cuarto"))
        assert result.returncode == 75, command
        assert f"{spool} is missing" in result.stderr.decode() and "FILE.spool" in result.stderr.decode(), command
    assert not spool.exists()  # refused, not started again empty


def test_migration_5_holds_one_raw_mail_at_a_time(tmp_path: Path) -> None:
    """Fifty 25 MB mails at once would be 1.25 GB: a daemon killed for it rolls the
    migration back and fails the same way at every start."""
    database = tmp_path / "gateway.db"
    version_4_database(database)
    mail = 2 * 1024 * 1024
    with sqlite3.connect(database) as connection:
        for spool_id in range(10, 30):
            connection.execute(
                "INSERT INTO spool (id, received_at, mail_from, rcpt_tos, size, status, updated_at)"
                " VALUES (?, ?, 'c@empresa.example', '[]', ?, 'done', ?)",
                (spool_id, NOW, mail, NOW),
            )
            connection.execute("INSERT INTO spool_raw (id, raw) VALUES (?, zeroblob(?))", (spool_id, mail))
    tracemalloc.start()
    try:
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        MIGRATIONS[4].apply(connection)
        connection.execute("COMMIT")
        connection.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * mail, f"{peak / mail:.1f} mails in memory at once"
    with sqlite3.connect(spool_path(database)) as spool:
        assert spool.execute("SELECT count(*), sum(length(raw)) FROM spool_raw WHERE id >= 10").fetchone() == (
            20,
            20 * mail,
        )


def test_migration_5_beside_another_installs_spool_file_stops_and_says_so(config_path: Path) -> None:
    """A backup from before the spool file restored with the newer install's spool file
    left beside it: copying would keep that file's mail under the backup's ids."""
    database = config_path.parent / "gateway.db"
    version_4_database(database)
    migrate_spool(spool_path(database))
    with sqlite3.connect(spool_path(database)) as other:
        other.execute(
            "INSERT INTO spool (id, received_at, mail_from, rcpt_tos, size, updated_at)"
            " VALUES (1, ?, 'otro@empresa.example', '[]', 9, ?)",
            ("2026-11-30T10:00:00.000+00:00",) * 2,
        )
    migrated = run_cli(config_path, "migrate")
    assert migrated.returncode == 75
    assert f"{spool_path(database)} already holds another mail as id 1" in migrated.stderr.decode()
    assert user_version(database) == 4  # nothing dropped from the desk: move the file away and start again
