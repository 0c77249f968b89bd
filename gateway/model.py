"""The types every part of the gateway shares: a parsed mail and its parts, a ticket's
statuses, priorities and types, and the frozen views of stored tickets and messages.

Plain data, no I/O and no imports from the rest of the package, so any process (the
listener, the relay) can load it without loading the parser or the database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path


@dataclass(frozen=True)
class Address:
    name: str
    address: str  # lower-cased: mailbox identity, as every helpdesk treats it


@dataclass(frozen=True)
class SpilledFile:
    """A large attachment's content, written to a file by the parser worker (see workers.py)."""

    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes | SpilledFile
    content_id: str = ""  # without <>: what an HTML body's cid: URL names (RFC 2392)
    inline: bool = False  # the HTML shows it by its Content-ID: a signature's logo, not a file sent

    @property
    def size(self) -> int:
        return self.content.size if isinstance(self.content, SpilledFile) else len(self.content)

    @property
    def sha256(self) -> str:
        if isinstance(self.content, SpilledFile):
            return self.content.sha256
        return hashlib.sha256(self.content).hexdigest()

    def read(self) -> bytes:
        return self.content.path.read_bytes() if isinstance(self.content, SpilledFile) else self.content

    def source(self) -> bytes | Path:
        """What to copy the content from, without reading a spilled file into memory."""
        return self.content.path if isinstance(self.content, SpilledFile) else self.content


@dataclass(frozen=True)
class DeliveryFailure:
    """One failed recipient of a delivery status notification (RFC 3464)."""

    recipient: str
    status: str
    diagnostic: str


@dataclass(frozen=True)
class DeliveryReport:
    """What a bounce says: who failed. Which of our mails it returns is known by the signed
    return address it came back to (rules/signed_addresses.py), never by what the report quotes."""

    failures: tuple[DeliveryFailure, ...]


@dataclass(frozen=True)
class ParsedMail:
    message_id: str  # without angle brackets; made up (see _stand_in_id) when the mail has none
    subject: str
    sender: Address | None  # the From header
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str  # from text/plain parts, or converted from the HTML when there are none
    html: str | None
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, value), in order
    defects: tuple[str, ...]
    has_text_part: bool = True  # False: `text` was made from the HTML
    report: DeliveryReport | None = None  # for multipart/report; report-type=delivery-status
    part_count: int = 1
    depth: int = 0  # how deep multiparts nest
    # Filled by the parser worker (workers.read_mail), so no text work runs under the write lock:
    new_part: str = ""  # what the sender wrote, without quoted history (quotes.new_part)
    field_lines: tuple[tuple[str, str], ...] = ()  # (label, value) of its field lines (fields.field_lines)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class TicketType(StrEnum):
    REQUEST = "request"
    INCIDENT = "incident"
    QUESTION = "question"
    SUGGESTION = "suggestion"


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
