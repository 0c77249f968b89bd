"""The inbound spool: every accepted mail, raw, before anything else happens to it.

Guarantee: `add` returns only after the raw bytes and the envelope are committed, so the
listener may then answer 250. Mail arriving while a commit is under way is committed
together in the next one (group commit): one transaction for many sessions.

The mail itself (envelope and raw bytes) is written to the spool file
(storage/spool_file.py) by the listener, `ingest` and IMAP intake only; what became of it
is the desk's `spool` row, which the processor copies from the spool file as it claims.
A row moves queued → processing → done | ignored | failed. Ignored: a loop, or automatic
mail for no ticket, kept raw and nothing else. Failed: kept raw with the reason, and can
be retried. Rows left `processing` by a crash go back to the queue at start-up, until they
have used up their attempts. An attempt is counted when a mail is taken in hand, not when
it is claimed: the pipeline claims a few mails ahead, and a crash on one mail must not
count against the others it holds. Mails taken in hand together (a batch, applied in one
transaction) each count one; the pipeline takes a mail counted before in hand alone, so
from then on only the mail at fault counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from gateway.clock import Clock, timestamp
from gateway.storage.database import Database, FillBlob, Sql, Statement, is_disk_full, is_temporary
from gateway.storage.requeue import requeue
from gateway.storage.spool_file import ADVANCE, ATTACHED, IMPORT, spool_path

log = logging.getLogger(__name__)

QUEUED, PROCESSING, DONE, FAILED, IGNORED = "queued", "processing", "done", "failed", "ignored"
STATUSES = (QUEUED, PROCESSING, DONE, FAILED, IGNORED)

COMMIT_BATCH_BYTES = 8 * 1024 * 1024
# After a commit failed for want of space, new mail is refused at RCPT for this long; then
# the next mail's own commit tries again, so the listener recovers once space returns.
OUT_OF_SPACE_PAUSE = timedelta(seconds=5)
INSERT = "INSERT INTO spool (received_at, mail_from, rcpt_tos, peer, size, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
INSERT_RAW = "INSERT INTO spool_raw (id, raw) VALUES (last_insert_rowid(), zeroblob(?))"  # right after INSERT
FINISH = "UPDATE spool SET status = ?, outcome = ?, decision = ?, error = ?, updated_at = ? WHERE id = ?"
SUMMARY_COLUMNS = "id, received_at, mail_from, rcpt_tos, status, attempts, outcome, error, size, decision"
ENTRY_COLUMNS = "id, mail_from, rcpt_tos, peer, size, attempts, received_at"


@dataclass
class Pending:
    """A mail handed to `Spool.submit`, waiting for its commit. The spool owns `raw` (a
    file, or bytes) from then on and closes it once the commit is over, whatever became of
    the session that handed it over: a sender may hang up after its final "." while the
    mail waits for the next group commit."""

    mail_from: str
    rcpt_tos: str  # JSON
    peer: str
    raw: bytes | BinaryIO
    size: int  # measured when handed over
    committed: asyncio.Future[int]

    def resolve(self, spool_id: int) -> None:
        if self.committed.done():  # its sender hung up after the final "."; the mail is kept anyway
            log.info("spool %d: stored; its sender left before the answer", spool_id)
        else:
            self.committed.set_result(spool_id)

    def fail(self, error: Exception) -> None:
        if not self.committed.done():
            self.committed.set_exception(error)

    def close(self) -> None:
        if not isinstance(self.raw, bytes):
            self.raw.close()


@dataclass(frozen=True)
class SpoolEntry:
    """A mail taken from the spool to be processed."""

    id: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str
    size: int  # of the raw mail, which `Spool.raw` reads when it is needed
    attempts: int
    received_at: str = ""  # when it was accepted (250): the processing latency's start


@dataclass(frozen=True)
class SpoolSummary:
    """A spool row as an operator sees it in `inbound list`."""

    id: int
    received_at: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    status: str
    attempts: int
    outcome: str | None
    error: str | None
    size: int
    decision: str | None = None  # desk/decide.describe of what the pipeline decided


class Spool:
    """Over the spool file (storage/spool_file.py) for `add`, `submit` and `add_along`;
    over a desk database, which attaches the spool file read-only, for everything else."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock
        self._waiting: list[Pending] = []
        self._committer: asyncio.Task[None] | None = None
        self._out_of_space_at: datetime | None = None

    async def add(self, mail_from: str, rcpt_tos: list[str], peer: str, raw: bytes | BinaryIO) -> int:
        """Store a mail durably and return its spool id, once its commit is done."""
        return await self.submit(mail_from, rcpt_tos, peer, raw)

    def submit(self, mail_from: str, rcpt_tos: list[str], peer: str, raw: bytes | BinaryIO) -> asyncio.Future[int]:
        """Hand a mail (bytes, or a file the spool closes when done with it) to the next
        group commit; the future gives its spool id once committed. The mail is committed
        even if nobody waits for the future any more."""
        try:
            size = _size(raw)
        except BaseException:
            if not isinstance(raw, bytes):
                raw.close()
            raise
        committed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(Pending(mail_from, json.dumps(rcpt_tos), peer, raw, size, committed))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting())
        return committed

    def out_of_space(self) -> bool:
        """Whether a commit failed for want of space lately (RFC 3463 4.3.1 for new mail)."""
        since = self._out_of_space_at
        return since is not None and self.clock.now() - since < OUT_OF_SPACE_PAUSE

    async def _commit_waiting(self) -> None:
        """Batch after batch until nothing waits; each mail's file is closed once its commit
        is over. Yields to the loop between batches, even when one failed."""
        async with self._spool_file() as writer:
            while self._waiting:
                batch: list[Pending] = []
                try:
                    try:
                        async with writer.transaction() as database:
                            # Taken once the lock is ours: what arrived meanwhile goes too, up to a
                            # size, so one transaction never holds the lock for long.
                            batch = self._next_batch()
                            ids = await self._insert(database, batch)
                    except Exception as error:  # nothing of the batch is stored
                        batch = batch or self._next_batch()
                        await self._after_failure(writer, batch, error)
                    else:
                        self._out_of_space_at = None
                        for pending, spool_id in zip(batch, ids, strict=True):
                            pending.resolve(spool_id)
                finally:
                    for pending in batch:
                        pending.close()
                await asyncio.sleep(0)

    @asynccontextmanager
    async def _spool_file(self) -> AsyncIterator[Database]:
        """The spool file's connection: the one given, when it is the spool file (the
        listener's); else one opened for this write (`ingest`, tests, the bench)."""
        if self.database.spool_file:
            yield self.database
            return
        writer = await Database.open(spool_path(self.database.path), durable=True, spool=True)
        try:
            yield writer
        finally:
            await writer.close()

    async def _after_failure(self, writer: Database, batch: list[Pending], error: Exception) -> None:
        """A busy, locked or full database fails every mail alike: each sender gets the
        error (451/452) and retries. Otherwise one mail may be at fault: each is tried
        alone, so only that one's sender gets a 451 and the others are stored."""
        if is_disk_full(error):
            self._out_of_space_at = self.clock.now()
        if len(batch) == 1 or is_temporary(error):
            for pending in batch:
                pending.fail(error)
            return
        log.warning("spool: a batch of %d mails failed (%s); committing each alone", len(batch), error)
        for pending in batch:
            try:
                async with writer.transaction() as database:
                    [spool_id] = await self._insert(database, [pending])
            except Exception as alone:  # this mail's own failure: its sender gets it
                pending.fail(alone)
            else:
                pending.resolve(spool_id)

    async def _insert(self, database: Database, batch: list[Pending]) -> list[int]:
        """Every mail of a batch in one trip; returns their spool ids."""
        now = timestamp(self.clock.now())
        statements: list[Statement] = []
        for pending in batch:
            if not isinstance(pending.raw, bytes):
                pending.raw.seek(0)  # read again from the start after a failed attempt
            statements += [
                Sql(INSERT, (now, pending.mail_from, pending.rcpt_tos, pending.peer, pending.size, now), name="spool"),
                Sql(INSERT_RAW, (pending.size,)),
                FillBlob("spool_raw", "raw", pending.raw),
            ]
        inserted = (await database.execute_all(statements)).named("spool")
        return [row.lastrowid for row in inserted if row.lastrowid is not None]  # an INSERT always has one

    def _next_batch(self) -> list[Pending]:
        taken, size = 0, 0
        while taken < len(self._waiting) and (taken == 0 or size < COMMIT_BATCH_BYTES):
            size += self._waiting[taken].size
            taken += 1
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    # Every claim first copies the mail new in the spool file into the desk, in its trip.
    IMPORTING = (Sql(IMPORT), Sql(ADVANCE))

    async def claim_ahead(self, count: int, room_bytes: int) -> list[SpoolEntry]:
        """The oldest queued mails, marked processing, in one trip: arrival order, one taker
        only. At most `count`, and each only while those before it leave `room_bytes`
        (the first always, if there is room). No attempt is counted yet: see `take_in_hand`."""
        if count <= 0 or room_bytes <= 0:
            return []
        *_, claimed = await self.database.write_all([*self.IMPORTING, self._claim_ahead(count, room_bytes)])
        return _entries(claimed.rows)

    async def claim(self, spool_id: int) -> SpoolEntry | None:
        """A given mail, if it is still queued (another process may have taken it)."""
        *_, claimed = await self.database.write_all(
            [
                *self.IMPORTING,
                Sql(
                    f"UPDATE spool SET status = 'processing', updated_at = ?"
                    f" WHERE id = ? AND status = 'queued' RETURNING {ENTRY_COLUMNS}",
                    (timestamp(self.clock.now()), spool_id),
                ),
            ]
        )
        return next(iter(_entries(claimed.rows)), None)

    async def take_in_hand(
        self, entries: list[SpoolEntry], claim: int = 0, room_bytes: int = 0
    ) -> tuple[list[SpoolEntry], list[SpoolEntry]]:
        """Count an attempt on each claimed mail, committed before any work on them begins:
        if the process dies now, these mails (and no other it had claimed) are the suspects.
        The same commit claims up to `claim` more mails ahead (as `claim_ahead`), so the
        parser can start on them. Returns (the entries with their attempts, those claimed)."""
        now = timestamp(self.clock.now())
        marks = ", ".join("?" * len(entries))
        count = f"UPDATE spool SET attempts = attempts + 1, updated_at = ? WHERE id IN ({marks}) RETURNING id, attempts"
        statements = [Sql(count, (now, *(entry.id for entry in entries)))]
        if claim > 0 and room_bytes > 0:
            statements += [*self.IMPORTING, self._claim_ahead(claim, room_bytes)]
        counted, *claimed = await self.database.write_all(statements)
        attempts = {row["id"]: row["attempts"] for row in counted.rows}
        taken = [dataclasses.replace(entry, attempts=attempts.get(entry.id, entry.attempts)) for entry in entries]
        return taken, _entries(claimed[-1].rows) if claimed else []

    def _claim_ahead(self, count: int, room_bytes: int) -> Sql:
        # The running total is taken over the `count` oldest only (the inner LIMIT), never
        # over the whole queue: a backlog of thousands costs the same as one of ten.
        return Sql(
            "UPDATE spool SET status = 'processing', updated_at = ? WHERE status = 'queued' AND id IN ("
            " SELECT id FROM (SELECT id, size, sum(size) OVER (ORDER BY id) AS upto FROM"
            "  (SELECT id, size FROM spool WHERE status = 'queued' ORDER BY id LIMIT ?))"
            " WHERE upto - size < ?)"
            f" RETURNING {ENTRY_COLUMNS}",
            (timestamp(self.clock.now()), count, room_bytes),
        )

    async def unclaim(self, spool_id: int) -> None:
        """Back to the queue: it was claimed but never taken in hand, so no attempt counted."""
        await self.database.write(
            "UPDATE spool SET status = 'queued' WHERE id = ? AND status = 'processing'", (spool_id,)
        )

    def mark_done(self, spool_id: int, outcome: str, status: str = DONE, decision: str | None = None) -> None:
        """Record the outcome (done, or ignored: kept raw only) inside the transaction that applied it."""
        now = timestamp(self.clock.now())
        self.database.defer(FINISH, (status, outcome, decision, None, now, spool_id))

    async def requeue(self, spool_id: int) -> None:
        """Put a mail back in the queue after a temporary failure."""
        await self.database.write(FINISH, (QUEUED, None, None, None, timestamp(self.clock.now()), spool_id))

    async def mark_failed(self, spool_id: int, error: str) -> None:
        await self.database.write(FINISH, (FAILED, None, None, error, timestamp(self.clock.now()), spool_id))

    async def recover_interrupted(self, max_attempts: int) -> tuple[int, int]:
        """After a crash: requeue rows left processing; set aside those out of attempts.

        Returns (requeued, set_aside). A mail in hand when the process died `max_attempts`
        times is a poison mail: it is marked failed so it cannot stop the queue again. Mail
        only claimed ahead of it had no attempt counted, so it goes back to the queue as it was.
        """
        now = timestamp(self.clock.now())
        set_aside_sql = (
            "UPDATE spool SET status = 'failed', updated_at = ?,"
            " error = 'interrupted ' || attempts || ' times while processing; set aside'"
            " WHERE status = 'processing' AND attempts >= ?"
        )
        requeue_sql = "UPDATE spool SET status = 'queued', updated_at = ? WHERE status = 'processing'"
        async with self.database.transaction() as database:
            set_aside, requeued = await database.execute_all(
                [(set_aside_sql, (now, max_attempts)), (requeue_sql, (now,))]
            )
        return requeued.rowcount, set_aside.rowcount

    async def retry(self, spool_ids: list[int] | None) -> list[int]:
        """Queue failed mail again (all of it when `spool_ids` is None); returns the ids.
        Mail intake kept as failed (an IMAP message it could not take whole) is first
        copied into the desk, as a claim would, so it can be found while no daemon runs."""
        await self.database.write_all(list(self.IMPORTING))
        changes = "status = 'queued', attempts = 0, error = NULL, updated_at = ?"
        return await requeue(self.database, "spool", changes, (timestamp(self.clock.now()),), spool_ids)

    async def backlog(self) -> int:
        """Mail accepted and not yet processed."""
        row = await self.database.fetch_one(
            "SELECT count(*) AS n FROM inbound WHERE status IN ('queued', 'processing')"
        )
        return int(row["n"]) if row else 0

    async def summaries(self, status: str | None = None) -> list[SpoolSummary]:
        if status is None:
            rows = await self.database.fetch_all(f"SELECT {SUMMARY_COLUMNS} FROM inbound ORDER BY id")
        else:
            rows = await self.database.fetch_all(
                f"SELECT {SUMMARY_COLUMNS} FROM inbound WHERE status = ? ORDER BY id", (status,)
            )
        return [SpoolSummary(**{**dict(row), "rcpt_tos": tuple(json.loads(row["rcpt_tos"]))}) for row in rows]

    async def status_of(self, spool_id: int) -> str | None:
        row = await self.database.fetch_one("SELECT status FROM inbound WHERE id = ?", (spool_id,))
        return None if row is None else row["status"]

    async def raw(self, spool_id: int) -> bytes | None:
        row = await self.database.fetch_one(f"SELECT raw FROM {ATTACHED}.spool_raw WHERE id = ?", (spool_id,))
        return None if row is None else row["raw"]

    async def add_along(
        self,
        mail_from: str,
        rcpt_tos: list[str],
        peer: str,
        raw: bytes,
        along: tuple[str, tuple[object, ...]],
        error: str | None = None,
    ) -> int:
        """Store one mail and `along` (its last parameter, the spool id, is filled in) in one
        commit: an IMAP message and the record of its UID become durable together. With
        `error`, the mail is kept raw as failed, with that reason."""
        now = timestamp(self.clock.now())
        sql, parameters = along
        async with self._spool_file() as writer, writer.transaction() as database:
            statements: list[Statement] = [
                Sql(INSERT, (now, mail_from, json.dumps(rcpt_tos), peer, len(raw), now), name="spool"),
                Sql(INSERT_RAW, (len(raw),)),
                FillBlob("spool_raw", "raw", raw),
            ]
            [inserted] = (await database.execute_all(statements)).named("spool")
            spool_id = inserted.lastrowid
            assert spool_id is not None  # an INSERT always has one
            await database.execute_all(
                [
                    (sql, (*parameters, spool_id)),
                    ("UPDATE spool SET error = ? WHERE id = ?", (error, spool_id)),
                ]
            )
        return spool_id


def _entries(rows: list[sqlite3.Row]) -> list[SpoolEntry]:
    """Claimed rows as entries, oldest first (RETURNING promises no order)."""
    entries = [
        SpoolEntry(
            id=row["id"],
            mail_from=row["mail_from"],
            rcpt_tos=tuple(json.loads(row["rcpt_tos"])),
            peer=row["peer"],
            size=row["size"],
            attempts=row["attempts"],
            received_at=row["received_at"],
        )
        for row in rows
    ]
    return sorted(entries, key=lambda entry: entry.id)


def _size(source: bytes | BinaryIO) -> int:
    if isinstance(source, bytes):
        return len(source)
    size = source.seek(0, 2)
    source.seek(0)
    return size
