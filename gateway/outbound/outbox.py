"""The outbox: every mail the gateway sends, durable from the moment it is decided.

Guarantee: the `Notifier` (desk/notifications.py) renders and `add`s inside the transaction that
caused the notification, so a ticket change and its mail are committed together or not at
all. A row moves queued → sent | failed; a temporary failure stays queued with a later
`next_attempt_at`. What the relay accepted reaches `sent` through the relay's own sent
log first (sent_log.py), so no delivery waits for this database's lock after a 250. (This
module imports nothing of rendering or tickets: the relay's process loads only what it
needs.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.clock import Clock, timestamp
from gateway.outbound.sent_log import SentRecord
from gateway.outbound.wire import STREAMED_BYTES
from gateway.storage.database import BLOB_PIECE_BYTES, Database
from gateway.storage.requeue import requeue

QUEUED, SENT, FAILED = "queued", "sent", "failed"
STATUSES = (QUEUED, SENT, FAILED)
FLUSH = "outbox_flush_requested_at"  # meta row: see Outbox.retry
SUMMARY_COLUMNS = (
    "o.id, t.number AS ticket, o.template, o.message_id, o.recipients, o.status, o.attempts,"
    " o.created_at, o.next_attempt_at, o.sent_at, o.relay_reply"
)


@dataclass(frozen=True)
class OutboundMail:
    """A rendered mail, as the outbox keeps it."""

    template: str
    message_id: str  # without angle brackets
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class ReturnedMail:
    """A mail of ours that a delivery report came back for: what it was about, and to whom."""

    ticket_id: int | None
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class StoredMail:
    """A queued mail too large to read whole (wire.STREAMED_BYTES): read from its row in
    pieces, through SQLite's blob handle, one trip each (wire.StoredBody)."""

    database: Database
    outbox_id: int
    size: int

    async def pieces(self) -> AsyncIterator[bytes]:
        for offset in range(0, self.size, BLOB_PIECE_BYTES):
            yield await self.database.read_blob_piece("outbox", "raw", self.outbox_id, offset)


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes | StoredMail  # a large mail is read as it goes on the wire
    attempts: int
    created_at: str


@dataclass(frozen=True)
class OutboxSummary:
    id: int
    ticket: str | None
    template: str
    message_id: str
    recipients: tuple[str, ...]
    status: str
    attempts: int
    created_at: str
    next_attempt_at: str
    sent_at: str | None
    relay_reply: str | None


class Outbox:
    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock

    def add(self, ticket_id: int | None, mail: OutboundMail) -> None:
        """Queue a mail inside the caller's transaction (written with its next statement)."""
        now = timestamp(self.clock.now())
        self.database.defer(
            "INSERT INTO outbox (ticket_id, template, message_id, envelope_from, recipients, raw,"
            " created_at, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ticket_id, mail.template, mail.message_id, mail.envelope_from,
                json.dumps(list(mail.recipients)), mail.raw, now, now, now,
            ),
        )  # fmt: skip

    async def due(self, limit: int, skip: Collection[int] = ()) -> list[OutboxEntry]:
        """Queued mail due now, oldest first, but for `skip` (sent, not yet recorded here);
        a mail over wire.STREAMED_BYTES as a `StoredMail`, to be read as it is sent."""
        # length() of a blob reads its size, not its content (https://sqlite.org/lang_corefunc.html#length)
        rows = await self.database.fetch_all(
            "SELECT id, message_id, envelope_from, recipients, length(raw) AS size,"
            " CASE WHEN length(raw) <= ? THEN raw END AS raw, attempts, created_at FROM outbox"
            " WHERE status = 'queued' AND next_attempt_at <= ? AND id NOT IN (SELECT value FROM json_each(?))"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (STREAMED_BYTES, timestamp(self.clock.now()), json.dumps(list(skip)), limit),
        )
        return [
            OutboxEntry(
                id=row["id"],
                message_id=row["message_id"],
                envelope_from=row["envelope_from"],
                recipients=tuple(json.loads(row["recipients"])),
                raw=row["raw"] if row["raw"] is not None else StoredMail(self.database, row["id"], row["size"]),
                attempts=row["attempts"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def sent_with_token(self, token: str) -> ReturnedMail | None:
        """The mail whose Message-ID begins with `token` (see tokens.message_token)."""
        row = await self.database.fetch_one(
            "SELECT ticket_id, recipients FROM outbox WHERE message_id >= ? AND message_id < ? LIMIT 1",
            (f"{token}.", f"{token}/"),  # a range on the unique index: "/" follows "."
        )
        return None if row is None else ReturnedMail(row["ticket_id"], tuple(json.loads(row["recipients"])))

    async def next_due_at(self) -> str | None:
        row = await self.database.fetch_one("SELECT min(next_attempt_at) AS at FROM outbox WHERE status = 'queued'")
        return None if row is None else row["at"]

    async def record_sent(self, sent: Iterable[SentRecord]) -> None:
        """What the relay accepted (see sent_log.py), in one transaction; again is harmless, and
        so is a stale log beside a new database (the Message-ID must match too)."""
        now = timestamp(self.clock.now())
        async with self.database.transaction():
            for record in sent:
                self.database.defer(
                    "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, relay_reply = ?,"
                    " updated_at = ? WHERE id = ? AND message_id = ? AND status = 'queued'",
                    (record.sent_at, record.reply, now, record.outbox_id, record.message_id),
                )

    async def note_unreachable(self, outbox_id: int, reply: str) -> None:
        """The relay did not answer: why, for `outbox list`; no attempt counted, still due."""
        await self.database.write(
            "UPDATE outbox SET relay_reply = ?, updated_at = ? WHERE id = ?",
            (reply, timestamp(self.clock.now()), outbox_id),
        )

    async def give_up_queued_before(self, cutoff: datetime, skip: Collection[int], reason: str) -> int:
        """Fail queued mail created before `cutoff` (but for `skip`); returns how many."""
        rows = await self.database.write(
            "UPDATE outbox SET status = 'failed', relay_reply = ?, updated_at = ?"
            " WHERE status = 'queued' AND created_at < ? AND id NOT IN (SELECT value FROM json_each(?)) RETURNING id",
            (reason, timestamp(self.clock.now()), timestamp(cutoff), json.dumps(list(skip))),
        )
        return len(rows)

    async def mark_retry(self, outbox_id: int, next_attempt: datetime, reply: str) -> None:
        await self.database.write(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, relay_reply = ?, updated_at = ?"
            " WHERE id = ?",
            (timestamp(next_attempt), reply, timestamp(self.clock.now()), outbox_id),
        )

    async def mark_failed(self, outbox_id: int, reply: str) -> None:
        await self.database.write(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, relay_reply = ?, updated_at = ?"
            " WHERE id = ?",
            (reply, timestamp(self.clock.now()), outbox_id),
        )

    async def retry(self, outbox_ids: list[int] | None) -> list[int]:
        """Send failed and deferred mail now (all of it when `outbox_ids` is None), as
        Postfix's `postqueue -f` does; returns the ids. Failed mail starts afresh (attempts,
        give_up_hours); deferred mail keeps its count and deadline, and is only due now. A
        running relay sees it at its next look (at most [pipeline] poll_seconds) and, if it
        was waiting to probe an unreachable relay, tries at once (`flush_requested_at`)."""
        now = timestamp(self.clock.now())
        failed = "status = 'failed'"
        changes = (
            f"attempts = CASE WHEN {failed} THEN 0 ELSE attempts END,"
            f" created_at = CASE WHEN {failed} THEN ? ELSE created_at END,"
            " status = 'queued', next_attempt_at = ?, updated_at = ?"
        )
        which = f"{failed} OR (status = 'queued' AND next_attempt_at > ?)"
        flush = ("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (FLUSH, now))
        return await requeue(self.database, "outbox", changes, (now, now, now, now), outbox_ids, which, (flush,))

    async def flush_requested_at(self) -> str | None:
        """When `retry` last asked for mail to go now (from any process)."""
        row = await self.database.fetch_one("SELECT value FROM meta WHERE name = ?", (FLUSH,))
        return None if row is None else str(row["value"])

    async def summaries(self, status: str | None = None) -> list[OutboxSummary]:
        where, parameters = ("WHERE o.status = ?", (status,)) if status else ("", ())
        rows = await self.database.fetch_all(
            f"SELECT {SUMMARY_COLUMNS} FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id {where} ORDER BY o.id",
            parameters,
        )
        return [OutboxSummary(**{**dict(row), "recipients": tuple(json.loads(row["recipients"]))}) for row in rows]

    async def raw(self, outbox_id: int) -> bytes | None:
        row = await self.database.fetch_one("SELECT raw FROM outbox WHERE id = ?", (outbox_id,))
        return None if row is None else row["raw"]
