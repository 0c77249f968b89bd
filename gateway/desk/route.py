"""Which ticket a mail belongs to.

`route_mail` gathers the evidence; `decide` weighs it, in this order: the same Message-ID
already stored (a duplicate delivery); a signed address of ours among the envelope
recipients, which names its ticket by itself and is the only evidence here nobody can
forge (an open address names a new ticket an agent opens for a customer); a ticket
token in the subject; an In-Reply-To or References value naming a mail the
ticket holds or that we sent for it; else a new ticket. Subjects and threading headers are
written by the sender and rewritten or dropped by mail programs (a mailto link's subject
often is), so they never move a mail away from the ticket its signed address names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.desk.store import TicketStore
from gateway.model import ParsedMail, TicketRef
from gateway.rules.subject_token import ticket_numbers_in


@dataclass(frozen=True)
class Route:
    kind: Literal["new", "reply", "duplicate", "open"]
    ticket: TicketRef | None
    reason: str


@dataclass(frozen=True)
class Clue:
    """One piece of evidence naming an existing ticket, and what it was."""

    ticket: TicketRef
    reason: str


@dataclass(frozen=True)
class Evidence:
    duplicate: Clue | None = None
    signed: tuple[Clue, ...] = ()  # verified signed envelope recipients, in envelope order
    subject: Clue | None = None
    thread: Clue | None = None
    opening: str = ""  # a verified open address among the envelope recipients


NEW = Route("new", None, "no ticket token or known Message-ID")


def weigh(evidence: Evidence) -> Route:
    """The route the evidence gives; pure."""
    if evidence.duplicate is not None:
        return Route("duplicate", evidence.duplicate.ticket, evidence.duplicate.reason)
    if evidence.opening:  # an agent asks for a new ticket: no header may move it onto another
        return Route("open", None, f"signed open address <{evidence.opening}>")
    if evidence.signed:
        chosen = evidence.signed[0]
        others = (*evidence.signed[1:], evidence.subject, evidence.thread)
        overruled = [clue.reason for clue in others if clue is not None and clue.ticket.id != chosen.ticket.id]
        over = f" (over {'; '.join(overruled)})" if overruled else ""
        return Route("reply", chosen.ticket, f"{chosen.reason}{over}")
    for clue in (evidence.subject, evidence.thread):
        if clue is not None:
            return Route("reply", clue.ticket, clue.reason)
    return NEW


async def route_mail(mail: ParsedMail, store: TicketStore, signed: Sequence[Clue] = (), opening: str = "") -> Route:
    """`signed`: what the verified signed addresses among the envelope recipients name;
    `opening`: a verified open address among them."""
    if mail.message_id:
        holder = await store.ticket_holding_inbound(mail.message_id)
        if holder is not None:
            return weigh(Evidence(duplicate=Clue(holder, f"Message-ID <{mail.message_id}> already stored")))
    subject = await _by_subject(mail, store)
    # The threading headers are looked up only when the subject names no ticket: they could
    # not change the route then, and a reply by the subject is the common case.
    thread = await _by_headers(mail, store) if subject is None else None
    return weigh(Evidence(None, tuple(signed), subject, thread, opening))


async def _by_subject(mail: ParsedMail, store: TicketStore) -> Clue | None:
    for number in ticket_numbers_in(mail.subject, store.number_prefix):
        ticket = await store.ticket_by_number(number)
        if ticket is not None:
            return Clue(ticket, f"subject token {number}")
    return None


async def _by_headers(mail: ParsedMail, store: TicketStore) -> Clue | None:
    # In-Reply-To names the mail being answered; References lists the thread oldest first,
    # so its newest entries are the best evidence.
    candidates = [
        *(("In-Reply-To", value) for value in mail.in_reply_to),
        *(("References", value) for value in reversed(mail.references)),
    ]
    known = await store.tickets_by_message_ids(value for _, value in candidates)
    for header, value in candidates:
        if value in known:
            return Clue(known[value], f"{header} <{value}>")
    return None
