"""Fill a fresh database with many tickets (and their Message-IDs) before measuring, to show
that the cost of a mail does not grow with the database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gateway.storage.schema import SCHEMA

BATCH = 50_000
CREATED = "2026-01-01T00:00:00.000+00:00"


def prefill(database: Path, tickets: int) -> None:
    connection = sqlite3.connect(database)
    try:
        connection.executescript(SCHEMA)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = OFF")  # a fixture, not customer mail
        for start in range(1, tickets + 1, BATCH):
            numbers = range(start, min(start + BATCH, tickets + 1))
            connection.executemany(
                "INSERT INTO tickets (id, number, subject, requester, mailbox, type, priority, status,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 'soporte.latam@estela.example', 'request',"
                " 'medium', 'open', ?, ?)",
                (
                    (n, f"TK-{n:06d}", f"Caso antiguo {n}", f"antiguo{n}@empresa.example", CREATED, CREATED)
                    for n in numbers
                ),
            )
            connection.executemany(
                "INSERT INTO messages (ticket_id, message_id, direction, author, body, created_at)"
                " VALUES (?, ?, 'inbound', ?, 'Caso antiguo.', ?)",
                ((n, f"old-{n}@empresa.example", f"antiguo{n}@empresa.example", CREATED) for n in numbers),
            )
            connection.executemany(
                "INSERT INTO thread_ids (message_id, ticket_id) VALUES (?, ?)",
                ((f"old-{n}@empresa.example", n) for n in numbers),
            )
            connection.commit()
        connection.execute("UPDATE counters SET value = ? WHERE name = 'ticket'", (tickets,))
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    # Written with synchronous=OFF, hundreds of MB would still be on their way to disk while
    # the daemon runs, and its spool's fsyncs would wait for them: a database that has grown
    # to this size over months has no such write-back pending.
    with database.open("rb") as written:
        os.fsync(written.fileno())
