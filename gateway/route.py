"""Which ticket a mail belongs to.

In this order: the same Message-ID already stored (a duplicate delivery); a ticket token in
the subject; an In-Reply-To or References value naming a mail the ticket holds or that
we sent for it; else a new ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.parse import ParsedMail
from gateway.store import TicketRef, TicketStore
from gateway.tickets import ticket_numbers_in


@dataclass(frozen=True)
class Route:
    kind: Literal["new", "reply", "duplicate"]
    ticket: TicketRef | None
    reason: str


NEW = Route("new", None, "no ticket token or known Message-ID")


async def route_mail(mail: ParsedMail, store: TicketStore) -> Route:
    if mail.message_id:
        holder = await store.ticket_holding_inbound(mail.message_id)
        if holder is not None:
            return Route("duplicate", holder, f"Message-ID <{mail.message_id}> already stored")
    for number in ticket_numbers_in(mail.subject, store.number_prefix):
        ticket = await store.ticket_by_number(number)
        if ticket is not None:
            return Route("reply", ticket, f"subject token {number}")
    return await _route_by_headers(mail, store)


async def _route_by_headers(mail: ParsedMail, store: TicketStore) -> Route:
    # In-Reply-To names the mail being answered; References lists the thread oldest first,
    # so its newest entries are the best evidence.
    candidates = [
        *(("In-Reply-To", value) for value in mail.in_reply_to),
        *(("References", value) for value in reversed(mail.references)),
    ]
    known = await store.tickets_by_message_ids(value for _, value in candidates)
    for header, value in candidates:
        if value in known:
            return Route("reply", known[value], f"{header} <{value}>")
    return NEW
