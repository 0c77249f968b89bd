"""Tickets, participants, messages and attachments in SQLite.

Writes are called by the pipeline inside one transaction per mail; reads serve threading
and the CLI. Every statement is parameterised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import nh3

from gateway.clock import timestamp
from gateway.model import Address, Attachment, MessageView, StoredFile, StoredMessage, TicketRef, TicketView
from gateway.rules.subject_token import format_number, number_format_sql
from gateway.rules.tickets import NewTicket
from gateway.storage.database import Database, Executed, Statement, fill_blob, read_blob

MAX_THREAD_IDS = 200  # In-Reply-To and References looked up at most: an attacker writes them
TICKET_COLUMNS = (
    "t.id, t.number, t.subject, t.status, t.priority, t.type, t.requester, t.requester_name,"
    " t.mailbox, t.country, t.brand, t.product, t.source, t.created_at, t.updated_at,"
    " (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) AS message_count"
)


class TicketStore:
    def __init__(self, database: Database, number_prefix: str) -> None:
        self.database = database
        self.number_prefix = number_prefix

    # -- threading look-ups -------------------------------------------------------------

    async def ticket_by_number(self, number: str) -> TicketRef | None:
        row = await self.database.fetch_one("SELECT id, number, status FROM tickets WHERE number = ?", (number,))
        return None if row is None else TicketRef(row["id"], row["number"], row["status"])

    async def ticket_by_id(self, ticket_id: int) -> TicketRef | None:
        row = await self.database.fetch_one("SELECT id, number, status FROM tickets WHERE id = ?", (ticket_id,))
        return None if row is None else TicketRef(row["id"], row["number"], row["status"])

    async def tickets_by_message_ids(self, message_ids: Iterable[str]) -> dict[str, TicketRef]:
        """For each known Message-ID among `message_ids`, the ticket it belongs to."""
        wanted = list(message_ids)
        if not wanted:
            return {}
        rows = await self.database.fetch_all(
            "SELECT x.message_id, t.id, t.number, t.status FROM thread_ids x"
            f" JOIN tickets t ON t.id = x.ticket_id WHERE x.message_id IN ({marks(wanted)})",
            tuple(wanted),
        )
        return {row["message_id"]: TicketRef(row["id"], row["number"], row["status"]) for row in rows}

    async def sent_to(self, ticket_id: int, message_ids: Iterable[str], address: str) -> str | None:
        """The first of `message_ids` naming a mail we sent about this ticket to `address`."""
        wanted = list(dict.fromkeys(message_ids))[:MAX_THREAD_IDS]
        if not wanted:
            return None
        row = await self.database.fetch_one(
            "SELECT o.message_id FROM outbox o, json_each(o.recipients) r WHERE o.ticket_id = ?"
            f" AND o.message_id IN ({marks(wanted)}) AND lower(r.value) = ? LIMIT 1",
            (ticket_id, *wanted, address.lower()),
        )
        return None if row is None else str(row["message_id"])

    async def ticket_holding_inbound(self, message_id: str) -> TicketRef | None:
        """The ticket that already holds a received mail with this Message-ID."""
        row = await self.database.fetch_one(
            "SELECT t.id, t.number, t.status FROM messages m JOIN tickets t ON t.id = m.ticket_id"
            " WHERE m.direction = 'inbound' AND m.message_id = ?",
            (message_id,),
        )
        return None if row is None else TicketRef(row["id"], row["number"], row["status"])

    # -- writes (inside the caller's transaction) ---------------------------------------

    async def create_ticket(self, new: NewTicket, now: datetime) -> TicketRef:
        when = timestamp(now)
        # One trip: the counter moves, and the INSERT spells the number from it.
        counter, inserted = await self.database.execute_all(
            [
                ("UPDATE counters SET value = value + 1 WHERE name = 'ticket' RETURNING value", ()),
                (
                    "INSERT INTO tickets (number, subject, requester, requester_name, mailbox, country, brand,"
                    " product, type, priority, status, source, created_at, updated_at, fiscal_id, fiscal_id_valid,"
                    " company, phone, follow_up_of)"
                    " VALUES (printf(?, (SELECT value FROM counters WHERE name = 'ticket')),"
                    " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id, number",
                    (
                        number_format_sql(self.number_prefix), new.subject, new.requester.address,
                        new.requester.name, new.mailbox, new.country, new.brand, new.product, new.type,
                        new.priority, new.status, new.source, when, when, new.fiscal_id, new.fiscal_id_valid,
                        new.company, new.phone, new.follow_up_of,
                    ),
                ),
            ]
        )  # fmt: skip
        number = format_number(self.number_prefix, counter.rows[0]["value"])
        assert inserted.rows[0]["number"] == number, f"{inserted.rows[0]['number']} is not spelled {number}"
        ticket = TicketRef(inserted.rows[0]["id"], number, new.status)
        for statement in (*_participants(ticket.id, [new.requester], "requester", now),
                          *_participants(ticket.id, new.cc, "cc", now)):  # fmt: skip
            self.database.defer(statement)
        self.record_history(ticket.id, "status", None, new.status, new.requester.address, now)
        return ticket

    async def add_participants(self, ticket_id: int, people: Iterable[Address], role: str, now: datetime) -> int:
        """Add people not yet on the ticket; returns how many were new."""
        added = await self.database.execute_all(_participants(ticket_id, people, role, now))
        return sum(executed.rowcount for executed in added)

    async def remove_participants(self, ticket_id: int, addresses: Iterable[str]) -> int:
        removed = await self.database.execute_all(
            [
                ("DELETE FROM participants WHERE ticket_id = ? AND address = ? AND role = 'cc'", (ticket_id, address))
                for address in addresses
            ]
        )
        return sum(executed.rowcount for executed in removed)

    async def mark_bounced(self, ticket_id: int, address: str, diagnostic: str) -> bool:
        """Stop mailing an address on a ticket; True when it was a participant."""
        updated = await self.database.execute(
            "UPDATE participants SET status = 'bounced', diagnostic = ? WHERE ticket_id = ? AND address = ?",
            (diagnostic, ticket_id, address),
        )
        return updated.rowcount > 0

    async def add_message(self, ticket_id: int, spool_id: int | None, message: StoredMessage, now: datetime) -> None:
        when = timestamp(now)
        insert = (
            "INSERT INTO messages (ticket_id, spool_id, message_id, direction, author, author_name,"
            " recipients_to, recipients_cc, subject, date, body, new_part, html, visibility, note, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ticket_id, spool_id, message.message_id, message.direction,
                message.author.address, message.author.name, _addresses_json(message.to),
                _addresses_json(message.cc), message.subject,
                timestamp(message.date) if message.date else None,
                message.body, message.new_part, _safe_html(message.html), message.visibility, message.note, when,
            ),
        )  # fmt: skip
        if message.attachments:  # their rows name the message's row: wait for its id
            inserted = await self.database.execute(*insert)
            assert inserted.lastrowid is not None
            for attachment in message.attachments:
                self._add_attachment(inserted.lastrowid, attachment)
        else:  # nobody waits for it: it goes with the transaction's next trip
            self.database.defer(*insert)
        if message.message_id:
            self.remember_thread_id(message.message_id, ticket_id)
        self.database.defer("UPDATE tickets SET updated_at = ? WHERE id = ?", (when, ticket_id))

    def _add_attachment(self, message_row: int, attachment: Attachment) -> None:
        digest, size = attachment.sha256, attachment.size
        self.database.defer("INSERT OR IGNORE INTO blobs (sha256, size, content) VALUES (?, ?, zeroblob(?))",
                            (digest, size, size))  # fmt: skip
        self.database.defer(fill_blob("blobs", "content", attachment.source()))
        self.database.defer(
            "INSERT INTO attachments (message_row, filename, content_type, size, sha256) VALUES (?, ?, ?, ?, ?)",
            (message_row, attachment.filename, attachment.content_type, size, digest),
        )

    def remember_thread_id(self, message_id: str, ticket_id: int) -> None:
        """A Message-ID of the ticket's thread, received or sent: replies to it thread here."""
        self.database.defer(
            "INSERT OR IGNORE INTO thread_ids (message_id, ticket_id) VALUES (?, ?)", (message_id, ticket_id)
        )

    async def update_fields(self, ticket_id: int, changes: Mapping[str, object], by: str, now: datetime) -> list[str]:
        """Set ticket fields, recording each real change in the history; returns the fields changed."""
        current = await self.database.fetch_one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        assert current is not None
        changed = [name for name, value in changes.items() if current[name] != value]
        for name in changed:
            if name not in UPDATABLE:
                raise ValueError(f"not an updatable ticket field: {name}")
            self.database.defer(f"UPDATE tickets SET {name} = ? WHERE id = ?", (changes[name], ticket_id))
            if name in TRACKED:
                self.record_history(ticket_id, name, current[name], changes[name], by, now)
        if changed:
            self.database.defer("UPDATE tickets SET updated_at = ? WHERE id = ?", (timestamp(now), ticket_id))
        return changed

    def record_history(self, ticket_id: int, field: str, old: object, new: object, by: str, now: datetime) -> None:
        self.database.defer(
            "INSERT INTO history (ticket_id, at, field, old, new, by) VALUES (?, ?, ?, ?, ?, ?)",
            (ticket_id, timestamp(now), field, old, new, by),
        )

    async def add_rating(self, ticket_id: int, resolution: int, helpful: bool, comment: str, now: datetime) -> bool:
        """Record a rating once per resolution; False when this resolution was rated already."""
        inserted = await self.database.execute(
            "INSERT OR IGNORE INTO ratings (ticket_id, resolution, helpful, comment, at) VALUES (?, ?, ?, ?, ?)",
            (ticket_id, resolution, helpful, comment, timestamp(now)),
        )
        return inserted.rowcount > 0

    # -- what the domain and notifications read -------------------------------------------

    async def is_rated(self, ticket_id: int, resolution: int) -> bool:
        """Whether this resolution of the ticket has its rating already (one counts)."""
        row = await self.database.fetch_one(
            "SELECT 1 FROM ratings WHERE ticket_id = ? AND resolution = ?", (ticket_id, resolution)
        )
        return row is not None

    async def ticket_view(self, ticket_id: int) -> TicketView:
        return _view(ticket_id, *await self.database.execute_all(_view_statements(ticket_id)))

    async def ticket_view_and_mail_since(
        self, ticket_id: int, field: str, since: datetime
    ) -> tuple[TicketView, list[tuple[int, str, str]], frozenset[str]]:
        """The ticket's view and what bounds automatic mail about it since then, in one trip
        (a notification needs both): (outbox id, template, recipient) of each mail, and the
        values `field` was given in its history. Read inside the notifying transaction, so
        it counts that transaction's mails too."""
        *view, sent, recorded = await self.database.execute_all(
            [
                *_view_statements(ticket_id),
                (
                    "SELECT o.id, o.template, r.value AS recipient FROM outbox o, json_each(o.recipients) r"
                    " WHERE o.ticket_id = ? AND o.created_at >= ?",
                    (ticket_id, timestamp(since)),
                ),
                (
                    "SELECT new FROM history WHERE ticket_id = ? AND field = ? AND at >= ?",
                    (ticket_id, field, timestamp(since)),
                ),
            ]
        )
        return (
            _view(ticket_id, *view),
            [(row["id"], row["template"], str(row["recipient"])) for row in sent.rows],
            frozenset(str(row["new"]) for row in recorded.rows),
        )

    async def tickets_opened_since(self, requester: str, since: datetime) -> int:
        row = await self.database.fetch_one(
            "SELECT count(*) AS n FROM tickets WHERE requester = ? AND created_at >= ?", (requester, timestamp(since))
        )
        return int(row["n"]) if row else 0

    async def stale_resolved(self, resolved_before: datetime) -> list[int]:
        rows = await self.database.fetch_all(
            "SELECT id FROM tickets WHERE status = 'resolved' AND resolved_at <= ? ORDER BY id",
            (timestamp(resolved_before),),
        )
        return [row["id"] for row in rows]

    async def blob(self, sha256: str) -> bytes | None:
        row = await self.database.fetch_one("SELECT content FROM blobs WHERE sha256 = ?", (sha256,))
        return None if row is None else row["content"]

    async def read_blob(self, sha256: str, sink: Callable[[bytes], object]) -> bool:
        return await read_blob_pieces(self.database, sha256, sink)

    async def secret(self, generate: Callable[[], str]) -> str:
        """The database's own signing secret, made once when the config gives none."""
        await self.database.write("INSERT OR IGNORE INTO meta (name, value) VALUES ('secret', ?)", (generate(),))
        row = await self.database.fetch_one("SELECT value FROM meta WHERE name = 'secret'")
        assert row is not None
        return str(row["value"])


# Fields an update may set, and those whose changes the history records.
UPDATABLE = frozenset(
    {
        "status", "priority", "type", "assignee", "country", "brand", "product", "incident",
        "first_response_at", "resolved_at", "closed_at", "resolutions",
    }
)  # fmt: skip
TRACKED = frozenset({"status", "priority", "type", "assignee", "country", "brand", "product", "incident"})


def _participants(ticket_id: int, people: Iterable[Address], role: str, now: datetime) -> list[Statement]:
    return [
        (
            "INSERT OR IGNORE INTO participants (ticket_id, address, name, role, added_at) VALUES (?, ?, ?, ?, ?)",
            (ticket_id, person.address, person.name, role, timestamp(now)),
        )
        for person in people
    ]


def _view_statements(ticket_id: int) -> list[Statement]:
    """A ticket's view, read in one trip: the ticket, its people, messages and files."""
    return [
        (
            "SELECT t.*, f.number AS follow_up_number FROM tickets t"
            " LEFT JOIN tickets f ON f.id = t.follow_up_of WHERE t.id = ?",
            (ticket_id,),
        ),
        (
            "SELECT address, name, role, status FROM participants WHERE ticket_id = ? ORDER BY added_at, address",
            (ticket_id,),
        ),
        (
            "SELECT id, message_id, direction, author, author_name, coalesce(date, created_at) AS date,"
            " coalesce(new_part, body) AS body, visibility, note FROM messages WHERE ticket_id = ? ORDER BY id",
            (ticket_id,),
        ),
        (
            "SELECT message_row, id, filename, content_type, size, sha256 FROM attachments"
            " WHERE message_row IN (SELECT id FROM messages WHERE ticket_id = ?) ORDER BY id",
            (ticket_id,),
        ),
    ]


def _view(ticket_id: int, tickets: Executed, people: Executed, messages: Executed, attachments: Executed) -> TicketView:
    assert tickets.rows, f"ticket {ticket_id} vanished inside its transaction"
    row = tickets.rows[0]
    files: dict[int, list[StoredFile]] = {}
    for a in attachments.rows:
        stored = StoredFile(a["id"], a["filename"], a["content_type"], a["size"], a["sha256"])
        files.setdefault(a["message_row"], []).append(stored)
    return TicketView(
        id=row["id"], number=row["number"], subject=row["subject"], status=row["status"],
        priority=row["priority"], type=row["type"], mailbox=row["mailbox"], country=row["country"],
        brand=row["brand"], product=row["product"], created_at=row["created_at"],
        requester=Address(row["requester_name"], row["requester"]),
        cc=tuple(Address(p["name"], p["address"]) for p in people.rows if p["role"] == "cc"),
        unreachable=frozenset(p["address"] for p in people.rows if p["status"] == "bounced"),
        messages=tuple(
            MessageView(
                message_id=m["message_id"], direction=m["direction"],
                author=Address(m["author_name"], m["author"]), date=m["date"], body=m["body"],
                attachment_names=tuple(f.filename for f in files.get(m["id"], [])),
                visibility=m["visibility"], files=tuple(files.get(m["id"], [])), note=m["note"],
            )
            for m in messages.rows
        ),
        assignee=row["assignee"], incident=row["incident"], resolutions=row["resolutions"],
        resolved_at=row["resolved_at"], first_response_at=row["first_response_at"],
        follow_up_of=row["follow_up_number"], fiscal_id=row["fiscal_id"],
        fiscal_id_valid=None if row["fiscal_id_valid"] is None else bool(row["fiscal_id_valid"]),
        company=row["company"], phone=row["phone"],
    )  # fmt: skip


def marks(values: Iterable[object]) -> str:
    """Placeholders for an IN (...) list: one '?' per value."""
    return ",".join("?" for _ in values)


async def attachments_by_message(database: Database, message_rows: list[int]) -> dict[int, list[dict[str, object]]]:
    if not message_rows:
        return {}
    rows = await database.fetch_all(
        "SELECT message_row, id, filename, content_type, size, sha256 FROM attachments"
        f" WHERE message_row IN ({marks(message_rows)}) ORDER BY id",
        tuple(message_rows),
    )
    result: dict[int, list[dict[str, object]]] = {}
    for row in rows:
        entry = {key: row[key] for key in ("id", "filename", "content_type", "size", "sha256")}
        result.setdefault(row["message_row"], []).append(entry)
    return result


async def read_blob_pieces(database: Database, sha256: str, sink: Callable[[bytes], object]) -> bool:
    """Hand a stored file to `sink` in pieces, never whole in memory; False: no such blob."""
    selected, _ = await database.execute_all(
        [("SELECT rowid FROM blobs WHERE sha256 = ?", (sha256,)), read_blob("blobs", "content", sink)]
    )
    return bool(selected.rows)


def _safe_html(html: str | None) -> str | None:
    """Customer HTML as stored for showing again: sanitised (the raw mail keeps the original)."""
    return nh3.clean(html) if html else None


def _addresses_json(addresses: tuple[Address, ...]) -> str:
    return json.dumps([person.address for person in addresses])
