"""What the desk reads and writes about a ticket, as plain frozen types: a reference, a
stored message, a file, and the view notifications and the domain work from. No I/O:
store.py fills them from SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.parsing.mail import Address, Attachment, ParsedMail


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
    body: str  # the full text
    new_part: str  # without quoted history
    html: str | None
    attachments: tuple[Attachment, ...]
    visibility: str = "public"  # public | internal | system
    note: str | None = None  # why it is internal or system


@dataclass(frozen=True)
class StoredFile:
    """An attachment as stored: its row (what `attachments get ID` takes) and its blob's digest."""

    id: int
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class MessageView:
    """A message as a notification shows it."""

    message_id: str | None
    direction: str
    author: Address
    date: str
    body: str  # the new part: what the author wrote in this mail
    attachment_names: tuple[str, ...]
    visibility: str = "public"
    files: tuple[StoredFile, ...] = ()  # the attachments themselves, for agents' notifications
    note: str | None = None  # why it is internal or system (an agent's notification marks it)


@dataclass(frozen=True)
class TicketView:
    """A ticket as notifications and the domain see it: fields, people, conversation."""

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
    assignee: str | None = None
    incident: str | None = None
    resolutions: int = 0
    resolved_at: str | None = None
    first_response_at: str | None = None
    follow_up_of: str | None = None  # the number of the closed ticket this one follows
    fiscal_id: str | None = None
    fiscal_id_valid: bool | None = None  # None: not checked (no id, or a country without a check)
    company: str = ""
    phone: str = ""

    def message(self, message_id: str | None) -> MessageView | None:
        return next((m for m in self.messages if message_id and m.message_id == message_id), None)


def inbound_message(
    mail: ParsedMail, author: Address, new_part: str, visibility: str = "public", note: str | None = None
) -> StoredMessage:
    return StoredMessage(
        message_id=mail.message_id,
        direction="inbound",
        author=author,
        to=mail.to,
        cc=mail.cc,
        subject=mail.subject,
        date=mail.date,
        body=mail.text,
        new_part=new_part,
        html=mail.html,
        attachments=mail.attachments,
        visibility=visibility,
        note=note,
    )
