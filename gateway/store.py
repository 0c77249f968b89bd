"""Tickets, participants, messages and attachments in SQLite.

Writes are called by the pipeline inside one transaction per mail; reads serve threading
and the CLI. Every statement is parameterised.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.clock import timestamp
from gateway.database import Database
from gateway.parse import Address, Attachment, ParsedMail
from gateway.tickets import NewTicket, format_number

TICKET_COLUMNS = (
    "t.id, t.number, t.subject, t.status, t.priority, t.type, t.requester, t.requester_name,"
    " t.mailbox, t.country, t.brand, t.product, t.source, t.created_at, t.updated_at,"
    " (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) AS message_count"
)


@dataclass(frozen=True)
class TicketRef:
    id: int
    number: str
    status: str


@dataclass(frozen=True)
class StoredMessage:
    """What a message contributes to the conversation."""

    message_id: str | None
    direction: str  # inbound | outbound
    author: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    body: str
    html: str | None
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True)
class MessageView:
    """A message as a notification shows it."""

    message_id: str | None
    direction: str
    author: Address
    date: str
    body: str
    attachment_names: tuple[str, ...]


@dataclass(frozen=True)
class TicketView:
    """A ticket as notifications see it: fields, people, and the conversation."""

    id: int
    number: str
    subject: str
    status: str
    priority: str
    type: str
    mailbox: str
    country: str
    brand: str
    product: str
    created_at: str
    requester: Address
    cc: tuple[Address, ...]
    unreachable: frozenset[str]
    messages: tuple[MessageView, ...]  # oldest first

    def message(self, message_id: str | None) -> MessageView | None:
        return next((m for m in self.messages if message_id and m.message_id == message_id), None)


def inbound_message(mail: ParsedMail, author: Address) -> StoredMessage:
    return StoredMessage(
        message_id=mail.message_id,
        direction="inbound",
        author=author,
        to=mail.to,
        cc=mail.cc,
        subject=mail.subject,
        date=mail.date,
        body=mail.text,
        html=mail.html,
        attachments=mail.attachments,
    )


class TicketStore:
    def __init__(self, database: Database, number_prefix: str) -> None:
        self.database = database
        self.number_prefix = number_prefix

    # -- threading look-ups -------------------------------------------------------------

    async def ticket_by_number(self, number: str) -> TicketRef | None:
        row = await self.database.fetch_one("SELECT id, number, status FROM tickets WHERE number = ?", (number,))
        return None if row is None else TicketRef(row["id"], row["number"], row["status"])

    async def tickets_by_message_ids(self, message_ids: Iterable[str]) -> dict[str, TicketRef]:
        """For each known Message-ID among `message_ids`, the ticket it belongs to."""
        wanted = list(message_ids)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = await self.database.fetch_all(
            "SELECT x.message_id, t.id, t.number, t.status FROM thread_ids x"
            f" JOIN tickets t ON t.id = x.ticket_id WHERE x.message_id IN ({marks})",
            tuple(wanted),
        )
        return {row["message_id"]: TicketRef(row["id"], row["number"], row["status"]) for row in rows}

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
        counter = await self.database.fetch_one(
            "UPDATE counters SET value = value + 1 WHERE name = 'ticket' RETURNING value"
        )
        assert counter is not None
        number = format_number(self.number_prefix, counter["value"])
        when = timestamp(now)
        cursor = await self.database.connection.execute(
            "INSERT INTO tickets (number, subject, requester, requester_name, mailbox, country,"
            " brand, product, type, priority, status, source, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number, new.subject, new.requester.address, new.requester.name, new.mailbox,
                new.country, new.brand, new.product, new.type, new.priority, new.status,
                new.source, when, when,
            ),
        )  # fmt: skip
        assert cursor.lastrowid is not None
        ticket = TicketRef(cursor.lastrowid, number, new.status)
        await self.add_participants(ticket.id, [new.requester], "requester", now)
        await self.add_participants(ticket.id, new.cc, "cc", now)
        return ticket

    async def add_participants(self, ticket_id: int, people: Iterable[Address], role: str, now: datetime) -> int:
        """Add people not yet on the ticket; returns how many were new."""
        added = 0
        for person in people:
            cursor = await self.database.connection.execute(
                "INSERT OR IGNORE INTO participants (ticket_id, address, name, role, added_at) VALUES (?, ?, ?, ?, ?)",
                (ticket_id, person.address, person.name, role, timestamp(now)),
            )
            added += cursor.rowcount
        return added

    async def add_message(self, ticket_id: int, spool_id: int | None, message: StoredMessage, now: datetime) -> int:
        when = timestamp(now)
        cursor = await self.database.connection.execute(
            "INSERT INTO messages (ticket_id, spool_id, message_id, direction, author, author_name,"
            " recipients_to, recipients_cc, subject, date, body, html, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ticket_id, spool_id, message.message_id, message.direction,
                message.author.address, message.author.name, _addresses_json(message.to),
                _addresses_json(message.cc), message.subject,
                timestamp(message.date) if message.date else None,
                message.body, message.html, when,
            ),
        )  # fmt: skip
        assert cursor.lastrowid is not None
        if message.message_id:
            await self.database.connection.execute(
                "INSERT OR IGNORE INTO thread_ids (message_id, ticket_id) VALUES (?, ?)",
                (message.message_id, ticket_id),
            )
        for attachment in message.attachments:
            await self._add_attachment(cursor.lastrowid, attachment)
        await self.database.connection.execute("UPDATE tickets SET updated_at = ? WHERE id = ?", (when, ticket_id))
        return cursor.lastrowid

    async def _add_attachment(self, message_row: int, attachment: Attachment) -> None:
        digest = hashlib.sha256(attachment.content).hexdigest()
        await self.database.connection.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size, content) VALUES (?, ?, ?)",
            (digest, len(attachment.content), attachment.content),
        )
        await self.database.connection.execute(
            "INSERT INTO attachments (message_row, filename, content_type, size, sha256) VALUES (?, ?, ?, ?, ?)",
            (message_row, attachment.filename, attachment.content_type, len(attachment.content), digest),
        )

    async def remember_thread_id(self, message_id: str, ticket_id: int) -> None:
        """A Message-ID we sent for a ticket: replies to it thread into the ticket."""
        await self.database.connection.execute(
            "INSERT OR IGNORE INTO thread_ids (message_id, ticket_id) VALUES (?, ?)", (message_id, ticket_id)
        )

    async def ticket_view(self, ticket_id: int) -> TicketView:
        row = await self.database.fetch_one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        assert row is not None, f"ticket {ticket_id} vanished inside its transaction"
        people = await self.database.fetch_all(
            "SELECT address, name, role, status FROM participants WHERE ticket_id = ? ORDER BY added_at, address",
            (ticket_id,),
        )
        messages = await self.database.fetch_all(
            "SELECT id, message_id, direction, author, author_name, coalesce(date, created_at) AS date, body"
            " FROM messages WHERE ticket_id = ? ORDER BY id",
            (ticket_id,),
        )
        names = await self._attachments_by_message([message["id"] for message in messages])
        return TicketView(
            id=row["id"], number=row["number"], subject=row["subject"], status=row["status"],
            priority=row["priority"], type=row["type"], mailbox=row["mailbox"], country=row["country"],
            brand=row["brand"], product=row["product"], created_at=row["created_at"],
            requester=Address(row["requester_name"], row["requester"]),
            cc=tuple(Address(p["name"], p["address"]) for p in people if p["role"] == "cc"),
            unreachable=frozenset(p["address"] for p in people if p["status"] == "bounced"),
            messages=tuple(
                MessageView(
                    message_id=m["message_id"], direction=m["direction"],
                    author=Address(m["author_name"], m["author"]), date=m["date"], body=m["body"],
                    attachment_names=tuple(str(a["filename"]) for a in names.get(m["id"], [])),
                )
                for m in messages
            ),
        )  # fmt: skip

    # -- reads for people and programs --------------------------------------------------

    async def list_tickets(self, status: str | None = None) -> list[dict[str, object]]:
        where, parameters = ("WHERE t.status = ?", (status,)) if status else ("", ())
        rows = await self.database.fetch_all(
            f"SELECT {TICKET_COLUMNS} FROM tickets t {where} ORDER BY t.id", parameters
        )
        cc = await self._cc_by_ticket([row["id"] for row in rows])
        return [_ticket_json(row, cc.get(row["id"], [])) for row in rows]

    async def show_ticket(self, number: str) -> dict[str, object] | None:
        row = await self.database.fetch_one(f"SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.number = ?", (number,))
        if row is None:
            return None
        cc = await self._cc_by_ticket([row["id"]])
        ticket = _ticket_json(row, cc.get(row["id"], []))
        ticket["messages"] = await self._messages(row["id"])
        return ticket

    async def _cc_by_ticket(self, ticket_ids: list[int]) -> dict[int, list[str]]:
        if not ticket_ids:
            return {}
        marks = ",".join("?" * len(ticket_ids))
        rows = await self.database.fetch_all(
            f"SELECT ticket_id, address FROM participants WHERE role = 'cc' AND ticket_id IN ({marks})"
            " ORDER BY added_at, address",
            tuple(ticket_ids),
        )
        result: dict[int, list[str]] = {}
        for row in rows:
            result.setdefault(row["ticket_id"], []).append(row["address"])
        return result

    async def _messages(self, ticket_id: int) -> list[dict[str, object]]:
        rows = await self.database.fetch_all(
            "SELECT id, spool_id, message_id, author, author_name, recipients_to, recipients_cc, date,"
            " direction, subject, body, created_at FROM messages WHERE ticket_id = ? ORDER BY id",
            (ticket_id,),
        )
        attachments = await self._attachments_by_message([row["id"] for row in rows])
        return [
            {
                "message_id": row["message_id"],
                "from": row["author"],
                "from_name": row["author_name"],
                "to": json.loads(row["recipients_to"]),
                "cc": json.loads(row["recipients_cc"]),
                "date": row["date"] or row["created_at"],
                "direction": row["direction"],
                "subject": row["subject"],
                "body": row["body"],
                "attachments": attachments.get(row["id"], []),
                "spool_id": row["spool_id"],  # `ticket-gateway inbound show ID` gives the raw mail
            }
            for row in rows
        ]

    async def _attachments_by_message(self, message_rows: list[int]) -> dict[int, list[dict[str, object]]]:
        if not message_rows:
            return {}
        marks = ",".join("?" * len(message_rows))
        rows = await self.database.fetch_all(
            "SELECT message_row, filename, content_type, size, sha256 FROM attachments"
            f" WHERE message_row IN ({marks}) ORDER BY id",
            tuple(message_rows),
        )
        result: dict[int, list[dict[str, object]]] = {}
        for row in rows:
            entry = {key: row[key] for key in ("filename", "content_type", "size", "sha256")}
            result.setdefault(row["message_row"], []).append(entry)
        return result

    async def blob(self, sha256: str) -> bytes | None:
        row = await self.database.fetch_one("SELECT content FROM blobs WHERE sha256 = ?", (sha256,))
        return None if row is None else row["content"]


def _addresses_json(addresses: tuple[Address, ...]) -> str:
    return json.dumps([person.address for person in addresses])


def _ticket_json(row: sqlite3.Row, cc: list[str]) -> dict[str, object]:
    data: dict[str, object] = dict(row)
    data.pop("id")
    data["cc"] = cc
    return data
