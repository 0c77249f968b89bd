"""Reads for people and programs: ticket lists with filters, one ticket in full, exports.

Stable keys only (`open`, `high`, `incident`); labels are the CLI's business. Every filter
is a bound parameter.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields

from gateway.desk.store import attachments_by_message, marks, read_blob_pieces
from gateway.model import Status
from gateway.rules.countries import country_code
from gateway.rules.fields import fiscal_key
from gateway.storage.database import Database

ATTACHMENT_COLUMNS = (
    "a.id, m.message_id AS message, m.direction, m.author AS 'from', coalesce(m.date, m.created_at) AS date,"
    " a.filename, a.content_type, a.size, a.sha256"
)

TICKET_COLUMNS = (
    "t.id, t.number, t.subject, t.status, t.priority, t.type, t.requester, t.requester_name,"
    " t.mailbox, t.country, t.brand, t.product, t.source, t.created_at, t.updated_at,"
    " t.assignee, t.incident, t.fiscal_id, t.fiscal_id_valid, t.company, t.phone,"
    " f.number AS follow_up_of, t.first_response_at, t.resolved_at, t.closed_at,"
    " (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) AS message_count"
)
FROM_TICKETS = "FROM tickets t LEFT JOIN tickets f ON f.id = t.follow_up_of"
# The order of `tickets export` columns: every field `tickets show --json` has but the conversation.
EXPORT_COLUMNS = (
    "number", "subject", "status", "priority", "type", "requester", "requester_name", "cc", "mailbox",
    "country", "brand", "product", "source", "company", "fiscal_id", "fiscal_id_valid", "phone",
    "assignee", "incident", "follow_up_of", "created_at", "updated_at", "first_response_at",
    "resolved_at", "closed_at", "message_count", "rating_helpful", "rating_comment", "rating_at",
)  # fmt: skip


# fields.fiscal_key of a stored id, in SQL: "76.086.428-5" and "76086428-5" are one RUT.
FISCAL_KEY_SQL = (
    "ltrim(upper(replace(replace(replace(replace(replace(t.fiscal_id, '.', ''), '-', ''), ' ', ''),"
    " '/', ''), '_', '')), '0')"
)
# Filters that are not "column = value": (clause, how many times the value is bound).
SPECIAL_FILTERS = {
    "fiscal_id": (f"{FISCAL_KEY_SQL} = ?", 1),
    "participant": (
        "(t.requester = ? COLLATE NOCASE OR EXISTS (SELECT 1 FROM participants p WHERE p.ticket_id = t.id"
        " AND p.address = ? COLLATE NOCASE))",
        2,
    ),
}
UNFINISHED = (Status.OPEN, Status.IN_PROGRESS, Status.WAITING_CUSTOMER)


@dataclass(frozen=True)
class TicketFilter:
    """What `tickets list` and `tickets export` narrow by; None means any."""

    status: str | None = None
    priority: str | None = None
    type: str | None = None
    country: str | None = None
    brand: str | None = None
    product: str | None = None
    company: str | None = None
    fiscal_id: str | None = None
    requester: str | None = None
    created_from: str | None = None
    created_to: str | None = None
    resolved_from: str | None = None
    resolved_to: str | None = None
    participant: str | None = None  # the requester or anyone copied on the ticket
    unfinished: bool = False  # only tickets not yet resolved or closed

    def where(self) -> tuple[str, tuple[object, ...]]:
        clauses: list[str] = []
        parameters: list[object] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or isinstance(value, bool):
                continue
            column, _, bound = item.name.rpartition("_")
            if item.name in SPECIAL_FILTERS:
                clause, times = SPECIAL_FILTERS[item.name]
                clauses.append(clause)
                parameters += [fiscal_key(value) if item.name == "fiscal_id" else value] * times
                continue
            if bound in ("from", "to"):  # created_from → t.created_at >= ?
                clauses.append(f"t.{column}_at {'>=' if bound == 'from' else '<'} ?")
            else:
                clauses.append(f"t.{item.name} = ? COLLATE NOCASE")
            # `--country Perú` finds what `País: PE` stored.
            parameters.append((country_code(value) or value) if item.name == "country" else value)
        if self.unfinished:
            clauses.append(f"t.status IN ({marks(UNFINISHED)})")
            parameters += UNFINISHED
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(parameters)


class TicketQueries:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def list_tickets(
        self, narrow: TicketFilter | None = None, newest_first: bool = False
    ) -> list[dict[str, object]]:
        where, parameters = (narrow or TicketFilter()).where()
        order = "DESC" if newest_first else "ASC"
        rows = await self.database.fetch_all(
            f"SELECT {TICKET_COLUMNS} {FROM_TICKETS}{where} ORDER BY t.id {order}", parameters
        )
        return await self._with_people_and_ratings(rows)

    async def company_tickets(self, participant: str, unfinished: bool) -> list[dict[str, object]]:
        """Tickets carrying a valid fiscal id that one of `participant`'s own tickets carries
        validly too: their colleagues' at the same company. An unvalidated id, or the e-mail
        domain, never makes anyone a colleague (anyone can write any RUT, or use gmail)."""
        own = f"SELECT {FISCAL_KEY_SQL} {FROM_TICKETS}{TicketFilter(participant=participant).where()[0]}"
        where = f" WHERE t.fiscal_id_valid = 1 AND {FISCAL_KEY_SQL} IN ({own} AND t.fiscal_id_valid = 1)"
        if unfinished:
            where += f" AND t.status IN ({marks(UNFINISHED)})"
        parameters = (participant, participant, *(UNFINISHED if unfinished else ()))
        rows = await self.database.fetch_all(
            f"SELECT {TICKET_COLUMNS} {FROM_TICKETS}{where} ORDER BY t.id DESC", parameters
        )
        return await self._with_people_and_ratings(rows)

    async def show_ticket(self, number: str) -> dict[str, object] | None:
        row = await self.database.fetch_one(f"SELECT {TICKET_COLUMNS} {FROM_TICKETS} WHERE t.number = ?", (number,))
        if row is None:
            return None
        [ticket] = await self._with_people_and_ratings([row])
        ticket["messages"] = await self._messages(row["id"])
        ticket["history"] = await self._history(row["id"])
        return ticket

    async def export_rows(self, narrow: TicketFilter) -> list[dict[str, object]]:
        rows = []
        for ticket in await self.list_tickets(narrow):
            rating = ticket["rating"] or {}
            assert isinstance(rating, dict)
            flat = {
                **ticket,
                "cc": " ".join(ticket["cc"]),  # type: ignore[arg-type]
                "rating_helpful": rating.get("helpful"),
                "rating_comment": rating.get("comment"),
                "rating_at": rating.get("at"),
            }
            rows.append({column: flat.get(column) for column in EXPORT_COLUMNS})
        return rows

    async def last_support_answers(self, numbers: list[str]) -> dict[str, str]:
        """For each of these tickets, when support last answered in public."""
        if not numbers:
            return {}
        rows = await self.database.fetch_all(
            "SELECT t.number, max(m.created_at) AS at FROM tickets t JOIN messages m ON m.ticket_id = t.id"
            f" WHERE t.number IN ({marks(numbers)}) AND m.direction = 'outbound' AND m.visibility = 'public'"
            " GROUP BY t.number",
            tuple(numbers),
        )
        return {row["number"]: row["at"] for row in rows}

    async def attachments_of(self, number: str) -> list[dict[str, object]] | None:
        """Every file of a ticket's messages, oldest first; None: no such ticket."""
        ticket = await self.database.fetch_one("SELECT id FROM tickets WHERE number = ?", (number,))
        if ticket is None:
            return None
        rows = await self.database.fetch_all(
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN messages m ON m.id = a.message_row"
            " WHERE m.ticket_id = ? ORDER BY a.id",
            (ticket["id"],),
        )
        return [dict(row) for row in rows]

    async def attachment(self, attachment_id: int) -> dict[str, object] | None:
        row = await self.database.fetch_one(
            f"SELECT {ATTACHMENT_COLUMNS}, t.number AS ticket FROM attachments a"
            " JOIN messages m ON m.id = a.message_row JOIN tickets t ON t.id = m.ticket_id WHERE a.id = ?",
            (attachment_id,),
        )
        return None if row is None else dict(row)

    async def read_file(self, sha256: str, sink: Callable[[bytes], object]) -> bool:
        """A stored file's bytes, handed to `sink` in pieces; False: its content is missing."""
        return await read_blob_pieces(self.database, sha256, sink)

    async def _with_people_and_ratings(self, rows: list[sqlite3.Row]) -> list[dict[str, object]]:
        ids = [row["id"] for row in rows]
        cc: dict[int, list[str]] = {}
        ratings: dict[int, dict[str, object]] = {}
        if ids:
            for person in await self.database.fetch_all(
                f"SELECT ticket_id, address FROM participants WHERE role = 'cc' AND ticket_id IN ({marks(ids)})"
                " ORDER BY added_at, address",
                tuple(ids),
            ):
                cc.setdefault(person["ticket_id"], []).append(person["address"])
            for rating in await self.database.fetch_all(
                f"SELECT ticket_id, helpful, comment, at FROM ratings WHERE ticket_id IN ({marks(ids)})"
                " ORDER BY resolution",
                tuple(ids),
            ):  # the latest resolution's rating wins
                ratings[rating["ticket_id"]] = {
                    "helpful": bool(rating["helpful"]),
                    "comment": rating["comment"],
                    "at": rating["at"],
                }
        tickets = []
        for row in rows:
            ticket: dict[str, object] = dict(row)
            ticket["cc"] = cc.get(row["id"], [])
            ticket["rating"] = ratings.get(row["id"])
            valid = ticket["fiscal_id_valid"]
            ticket["fiscal_id_valid"] = None if valid is None else bool(valid)
            del ticket["id"]  # internal; the number is the ticket's name
            tickets.append(ticket)
        return tickets

    async def _messages(self, ticket_id: int) -> list[dict[str, object]]:
        rows = await self.database.fetch_all(
            "SELECT id, spool_id, message_id, author, author_name, recipients_to, recipients_cc, date,"
            " direction, subject, body, new_part, visibility, note, created_at"
            " FROM messages WHERE ticket_id = ? ORDER BY id",
            (ticket_id,),
        )
        attachments = await attachments_by_message(self.database, [row["id"] for row in rows])
        return [
            {
                "message_id": row["message_id"],
                "from": row["author"],
                "from_name": row["author_name"],
                "to": json.loads(row["recipients_to"]),
                "cc": json.loads(row["recipients_cc"]),
                "date": row["date"] or row["created_at"],
                "direction": row["direction"],
                "visibility": row["visibility"],
                "note": row["note"],
                "subject": row["subject"],
                "body": row["new_part"] if row["new_part"] is not None else row["body"],
                "full_body": row["body"],
                "attachments": attachments.get(row["id"], []),
                "spool_id": row["spool_id"],  # `ticket-gateway inbound show ID` gives the raw mail
            }
            for row in rows
        ]

    async def _history(self, ticket_id: int) -> list[dict[str, object]]:
        rows = await self.database.fetch_all(
            "SELECT at, field, old, new, by FROM history WHERE ticket_id = ? ORDER BY id", (ticket_id,)
        )
        return [dict(row) for row in rows]
