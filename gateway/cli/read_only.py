"""The database as the commands that only look at it open it: read-only, creating nothing.

A mistyped `[database] path` must not leave a new directory, an empty database, a lock
file and a new signing secret behind and report "0 ticket(s)": these commands say the path
holds no database instead (exit 66, EX_NOINPUT in sysexits.h).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.clock import SystemClock
from gateway.desk.queries import TicketQueries
from gateway.inbound.spool import Spool
from gateway.outbound.outbox import Outbox
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.migrations import check_readable

OURS = "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('spool', 'tickets', 'outbox')"


class NoDatabaseError(Exception):
    """The configured path holds no ticket-gateway database."""


@dataclass(frozen=True)
class Reader:
    """What the read-only commands look at; none of it is written through this connection."""

    queries: TicketQueries
    spool: Spool
    outbox: Outbox


@asynccontextmanager
async def open_read_only(settings: Settings) -> AsyncIterator[Reader]:
    path = settings.database.path
    try:
        database = await Database.open_read_only(path)
    except FileNotFoundError:
        raise NoDatabaseError(f"no database at {path} (check [database] path)") from None
    try:
        try:
            ours = await database.fetch_one(OURS)
        except sqlite3.OperationalError:  # locked, say: not a verdict on the file
            raise
        except sqlite3.DatabaseError as error:  # "file is not a database"
            raise NoDatabaseError(f"{path} is not a ticket-gateway database: {error} (check [database] path)") from None
        if ours is None or ours["n"] != 3:
            raise NoDatabaseError(f"{path} is not a ticket-gateway database (check [database] path)")
        version = await database.fetch_one("PRAGMA user_version")
        check_readable(path, int(version[0]) if version else 0)  # never migrates: see migrations.py
        clock = SystemClock()
        yield Reader(TicketQueries(database), Spool(database, clock), Outbox(database, clock))
    finally:
        await database.close()
