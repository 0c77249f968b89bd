"""Retention: what is kept only for looking back is deleted once old enough.

Deleted: the raw bytes of inbound mail processed (done or ignored) before a cutoff, with
its envelope row unless a ticket's message points at it; mail the relay accepted before
a cutoff. Never deleted: queued, processing or failed inbound mail (a failed one waits for
`inbound retry`), queued (deferred included) or failed outbound mail, tickets, messages,
attachments and their contents.

Guarantee: the listener never waits long for the database. Rows go in batches of
BATCH_ROWS, each in a transaction of its own under the shared write lock (database.py)
(the raw mail's under the spool file's, storage/spool_file.py, only once the desk's row
says the mail is finished), which is let go between batches, so a mail arriving waits
for one batch at most; the pages freed are handed back to the file system a few at a
time in the same way
(`PRAGMA incremental_vacuum`, on a database whose auto_vacuum is INCREMENTAL: see
migrations.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.clock import timestamp
from gateway.storage.database import Database
from gateway.storage.spool_file import ATTACHED, spool_path

BATCH_ROWS = 500
VACUUM_PAGES = 500  # pages handed back per transaction: 2 MB at SQLite's 4 KiB default
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL

# The newest finished mail received before the cutoff: ids grow with time, so no older
# mail lies past it, and spool_raw (which holds only what is not yet purged) is read up to
# there in id order, never the envelopes already purged.
LAST_OLD_SPOOL_ID = (
    "SELECT id FROM spool WHERE status IN ('done', 'ignored') AND received_at < ? ORDER BY received_at DESC LIMIT 1"
)
OLD_RAW = (
    f"FROM {ATTACHED}.spool_raw r JOIN spool s ON s.id = r.id"
    " WHERE r.id <= ? AND s.status IN ('done', 'ignored') AND s.received_at < ?"
)
OLD_SENT = "FROM outbox WHERE status = 'sent' AND sent_at < ?"


@dataclass
class Purged:
    """How much went (or, in a dry run, would go), per kind."""

    inbound_mail: int = 0
    outbox_mail: int = 0
    pages_freed: int = 0
    auto_vacuum: bool = field(default=True)

    def as_dict(self) -> dict[str, int]:
        return {"inbound_mail": self.inbound_mail, "outbox_mail": self.outbox_mail, "pages_freed": self.pages_freed}


async def purge(
    database: Database, now: datetime, inbound_days: int, outbox_days: int, dry_run: bool = False
) -> Purged:
    """Delete what [retention] no longer keeps (a `days` of 0 keeps for ever)."""
    purged = Purged()
    spool_pages = 0
    if inbound_days:
        cutoff = timestamp(now - timedelta(days=inbound_days))
        purged.inbound_mail, spool_pages = await _purge_inbound(database, cutoff, dry_run)
    if outbox_days:
        purged.outbox_mail = await _purge_outbox(database, timestamp(now - timedelta(days=outbox_days)), dry_run)
    mode = await database.fetch_one("PRAGMA auto_vacuum")
    purged.auto_vacuum = mode is not None and mode[0] == INCREMENTAL
    if purged.auto_vacuum and not dry_run:
        purged.pages_freed = spool_pages + await _hand_back_free_pages(database)
    return purged


async def _purge_inbound(database: Database, cutoff: str, dry_run: bool) -> tuple[int, int]:
    """Returns the mails deleted and the spool file's pages handed back."""
    last = await database.fetch_one(LAST_OLD_SPOOL_ID, (cutoff,))
    if last is None:
        return 0, 0
    bounds = (last["id"], cutoff)
    if dry_run:
        return await _count(database, f"SELECT count(*) {OLD_RAW}", bounds), 0
    # The mail itself is in the spool file: deleted there first, through a writer of its
    # own, only once the desk's row says it is finished.
    spool = await Database.open(spool_path(database.path), spool=True)
    try:
        deleted = 0
        while True:
            rows = await database.fetch_all(f"SELECT r.id {OLD_RAW} ORDER BY r.id LIMIT {BATCH_ROWS}", bounds)
            ids = ",".join(str(int(row["id"])) for row in rows)
            if rows:
                await spool.write_all(
                    [(f"DELETE FROM spool_raw WHERE id IN ({ids})", ()), (f"DELETE FROM spool WHERE id IN ({ids})", ())]
                )
                # The desk's row goes too, unless a ticket's message names it (tickets show).
                await database.write(
                    f"DELETE FROM spool WHERE id IN ({ids})"
                    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.spool_id = spool.id)"
                )
            deleted += len(rows)
            if len(rows) < BATCH_ROWS:
                return deleted, await _hand_back_free_pages(spool)
            await asyncio.sleep(0)  # the lock is free: whoever waits for it goes first
    finally:
        await spool.close()


async def _purge_outbox(database: Database, cutoff: str, dry_run: bool) -> int:
    if dry_run:
        return await _count(database, f"SELECT count(*) {OLD_SENT}", (cutoff,))
    deleted = 0
    while True:
        rows = await database.write(
            f"DELETE FROM outbox WHERE id IN (SELECT id {OLD_SENT} ORDER BY sent_at LIMIT {BATCH_ROWS}) RETURNING id",
            (cutoff,),
        )
        deleted += len(rows)
        if len(rows) < BATCH_ROWS:
            return deleted
        await asyncio.sleep(0)


async def _hand_back_free_pages(database: Database) -> int:
    free = await _count(database, "PRAGMA freelist_count")
    # Stepped once, as the sqlite3 module steps a statement that returns no rows, the pragma
    # hands back one page whatever N it is given: so one statement per page, in one trip.
    for start in range(0, free, VACUUM_PAGES):
        async with database.transaction():
            await database.execute_all([("PRAGMA incremental_vacuum(1)", ())] * min(VACUUM_PAGES, free - start))
        await asyncio.sleep(0)
    return free - await _count(database, "PRAGMA freelist_count")


async def _count(database: Database, sql: str, parameters: tuple[object, ...] = ()) -> int:
    row = await database.fetch_one(sql, parameters)
    return int(row[0]) if row else 0
