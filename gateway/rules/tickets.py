"""Ticket domain rules: labels, priorities, participants and a new ticket's fields.

Ticket numbers and the subject token live in subject_token.py, what a subject says in
subjects.py.

Pure code, no I/O: the pipeline asks these functions what a mail means for a ticket and
then acts on the answer in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.model import Address, ParsedMail, Priority, Status, TicketType
from gateway.rules.subjects import ticket_subject

if TYPE_CHECKING:
    from gateway.rules.fields import CustomerFields


# What people read, per language; the stable keys above are what programs read.
LABELS: dict[str, dict[str, str]] = {
    "es": {
        Status.OPEN: "Abierto",
        Status.IN_PROGRESS: "En progreso",
        Status.WAITING_CUSTOMER: "Esperando su respuesta",
        Status.RESOLVED: "Resuelto",
        Status.CLOSED: "Cerrado",
        Priority.LOW: "Bajo",
        Priority.MEDIUM: "Medio",
        Priority.HIGH: "Alto",
        Priority.URGENT: "Urgente",
        TicketType.REQUEST: "Solicitud",
        TicketType.INCIDENT: "Incidente",
        TicketType.QUESTION: "Consulta",
        TicketType.SUGGESTION: "Sugerencia",
    },
    "en": {
        Status.OPEN: "Open",
        Status.IN_PROGRESS: "In progress",
        Status.WAITING_CUSTOMER: "Waiting for your reply",
        Status.RESOLVED: "Resolved",
        Status.CLOSED: "Closed",
        Priority.LOW: "Low",
        Priority.MEDIUM: "Medium",
        Priority.HIGH: "High",
        Priority.URGENT: "Urgent",
        TicketType.REQUEST: "Request",
        TicketType.INCIDENT: "Incident",
        TicketType.QUESTION: "Question",
        TicketType.SUGGESTION: "Suggestion",
    },
    "pt": {
        Status.OPEN: "Aberto",
        Status.IN_PROGRESS: "Em andamento",
        Status.WAITING_CUSTOMER: "Aguardando sua resposta",
        Status.RESOLVED: "Resolvido",
        Status.CLOSED: "Fechado",
        Priority.LOW: "Baixa",
        Priority.MEDIUM: "Média",
        Priority.HIGH: "Alta",
        Priority.URGENT: "Urgente",
        TicketType.REQUEST: "Solicitação",
        TicketType.INCIDENT: "Incidente",
        TicketType.QUESTION: "Dúvida",
        TicketType.SUGGESTION: "Sugestão",
    },
}


PRIORITY_ORDER = [Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.URGENT]
# X-Priority 1 (Highest) and 2 (High), as Outlook and Thunderbird write it.
HIGH_X_PRIORITIES = frozenset({"1", "2"})


@dataclass(frozen=True)
class Mailbox:
    """What mail to one of our addresses means: the ticket fields it implies."""

    address: str
    country: str
    brand: str
    product: str
    default_type: TicketType
    default_priority: Priority


@dataclass(frozen=True)
class NewTicket:
    subject: str
    requester: Address
    cc: tuple[Address, ...]
    mailbox: str
    country: str
    brand: str
    product: str
    type: TicketType
    priority: Priority
    status: Status = Status.OPEN
    source: str = "email"
    fiscal_id: str | None = None
    fiscal_id_valid: bool | None = None
    company: str = ""
    phone: str = ""
    follow_up_of: int | None = None


def priority_from_headers(mail: ParsedMail, default: Priority) -> Priority:
    importance = (mail.header("importance") or "").strip().lower()
    x_priority = (mail.header("x-priority") or "").strip()[:1]
    if importance == "high" or x_priority in HIGH_X_PRIORITIES:
        return max(default, Priority.HIGH, key=PRIORITY_ORDER.index)
    return default


def canonical_address(address: str) -> str:
    """`Local+tag@Domain` as the mailbox it reaches: `local@domain`."""
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def is_ours(address: str, ours: frozenset[str]) -> bool:
    """One of our mailboxes in any plus form (`soporte+rate.…@`, `soporte+anything@`)."""
    return canonical_address(address) in ours


def copied_people(mail: ParsedMail, ours: frozenset[str], exclude: str) -> tuple[Address, ...]:
    """Who a mail copies: its Cc, and To addresses that are not ours in any plus form (a
    signed address of ours as a participant would mail ourselves, or carry a forged tag)."""
    people: dict[str, Address] = {}
    for person in (*mail.to, *mail.cc):
        if not is_ours(person.address, ours) and person.address != exclude:
            people.setdefault(person.address, person)
    return tuple(people.values())


@dataclass(frozen=True)
class Newcomers:
    """The people a mail copies, split at the per-mail cap: `added` become participants,
    `left_out` are only listed for agents (a mail copying thousands must not make us a relay)."""

    added: tuple[Address, ...]
    left_out: tuple[Address, ...]


def cap_newcomers(copied: tuple[Address, ...], known: frozenset[str], limit: int) -> Newcomers:
    """At most `limit` people not already in `known` join from one mail, in the mail's order."""
    new = tuple(person for person in copied if person.address not in known)
    return Newcomers(new[:limit], new[limit:])


@dataclass(frozen=True)
class Followed:
    """A closed ticket a new mail follows up: the context its follow-up starts from."""

    id: int
    subject: str
    type: TicketType
    priority: Priority
    country: str
    brand: str
    product: str
    company: str
    phone: str
    fiscal_id: str | None
    fiscal_id_valid: bool | None
    people: tuple[Address, ...]  # its requester and CC who can still be mailed


def open_ticket(
    mail: ParsedMail,
    requester: Address,
    mailbox: Mailbox,
    fields: CustomerFields,
    cc: tuple[Address, ...],
    follows: Followed | None = None,
) -> NewTicket:
    """A new ticket: the mailbox's defaults, then the closed ticket it follows up (if any),
    then what the mail's headers and lines say; `cc` is who it copies, already capped
    (`cap_newcomers`); a follow-up also keeps the closed ticket's people."""
    base = follows or _defaults(mailbox)
    fiscal = fields.fiscal_id
    if follows is not None:
        cc = tuple({p.address: p for p in (*follows.people, *cc) if p.address != requester.address}.values())
    return NewTicket(
        subject=ticket_subject(mail.subject, fields.title),
        requester=requester,
        cc=cc,
        mailbox=mailbox.address,
        country=fields.country or base.country,
        brand=fields.brand or base.brand,
        product=fields.product or base.product,
        type=TicketType(fields.type) if fields.type else base.type,
        priority=Priority(fields.priority) if fields.priority else priority_from_headers(mail, base.priority),
        fiscal_id=fiscal.value if fiscal else base.fiscal_id,
        fiscal_id_valid=fiscal.valid if fiscal else base.fiscal_id_valid,
        company=fields.company or base.company,
        phone=fields.phone or base.phone,
        follow_up_of=follows.id if follows else None,
    )


def _defaults(mailbox: Mailbox) -> Followed:
    return Followed(
        id=0, subject="", type=mailbox.default_type, priority=mailbox.default_priority, country=mailbox.country,
        brand=mailbox.brand, product=mailbox.product, company="", phone="", fiscal_id=None, fiscal_id_valid=None,
        people=(),
    )  # fmt: skip


def requester_of(mail: ParsedMail, envelope_sender: str | None) -> Address | None:
    """The customer: From, else the envelope sender (MAIL FROM)."""
    if mail.sender is not None:
        return mail.sender
    if envelope_sender:
        return Address(name="", address=envelope_sender)
    return None


def by_company(tickets: list[dict[str, object]]) -> list[dict[str, object]]:
    """A customer's ticket list grouped by company and fiscal id, each group in the list's
    order (newest first), groups in the order their newest ticket comes; pure."""
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for ticket in tickets:
        key = (str(ticket.get("company") or ""), str(ticket.get("fiscal_id") or ""))
        groups.setdefault(key, []).append(ticket)
    return [
        {"company": company, "fiscal_id": fiscal, "tickets": listed} for (company, fiscal), listed in groups.items()
    ]
