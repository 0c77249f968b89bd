"""Parse raw mail bytes into a frozen `ParsedMail`.

Its guarantee: any bytes yield a `ParsedMail` (best-effort text for any charset,
mislabelled or unknown; headers decoded by headers.py), and no str in it holds a
surrogate escape or a NUL. The standard library's feed parser reads the tree, once.
mail-parser (this is the only module that imports it) reads the Date; its whole-message
parse is not used: its header decoding (email.header.decode_header) is quadratic in a
header's length and it calls str methods on compat32's `Header` objects.
`ParseError` is for the worker (no raw mail, a dead process).
"""

from __future__ import annotations

import binascii
import contextlib
import email.utils
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from io import BytesIO
from urllib.parse import unquote

from mailparser.utils import parse_mail_date as mailparser_date

from gateway.model import Address, Attachment, DeliveryFailure, DeliveryReport, ParsedMail
from gateway.parsing import headers
from gateway.parsing.headers import decode_bytes, header_text, message_ids, one_line, raw_text
from gateway.parsing.html_text import html_to_text
from gateway.parsing.mime_tree import charset_of, read_tree, stored_payload
from gateway.parsing.set_aside import lift_large_bodies

log = logging.getLogger(__name__)

UNSAFE_FILENAME_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
MAX_FILENAME_LENGTH = 200
STAND_IN_DOMAIN = "no-message-id.ticket-gateway.invalid"  # RFC 2606: never a real domain
CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")  # RFC 2045 section 5.1 tokens
BODY_TYPES = frozenset({"text/plain", "text/html"})
CID_URL = re.compile(r"""cid:([^\s"'<>()]+)""", re.IGNORECASE)
MAX_CONTENT_ID = 998  # RFC 5322's line bound: an id longer than that names nothing we keep


class ParseError(Exception):
    """The bytes could not be read as mail at all."""


def parse_mail(raw: bytes) -> ParsedMail:
    lifted = lift_large_bodies(raw)
    payloads = Payloads(lifted.bodies)
    tree = read_tree(lifted.skeleton)  # the feed parser reads any bytes: defects, not errors
    message = tree.message
    # Before any body is decoded: decoding base64 adds defects, and a body set aside is not.
    defects = tuple(sorted({type(defect).__name__ for part in message.walk() for defect in part.defects}))
    text_parts, html_parts, attachments = _split_parts(message, payloads)
    html = "\n".join(html_parts) or None
    text = "\n".join(text_parts) if text_parts else html_to_text(html or "")
    subject = header_text(message.get("Subject", ""))
    message_id = _first_message_id(message.get("Message-ID")) or _stand_in_id(message, subject, text)
    return ParsedMail(
        message_id=message_id,
        subject=subject,
        sender=_first(_addresses(message, "From")),
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        reply_to=_addresses(message, "Reply-To"),
        date=_date(message.get("Date")),
        in_reply_to=message_ids(message.get("In-Reply-To")),
        references=message_ids(message.get("References")),
        text=text,
        html=html,
        attachments=_shown_inline(attachments, html),
        headers=tuple((one_line(key).lower(), header_text(value)) for key, value in message.items()),
        defects=defects,
        has_text_part=bool(text_parts),
        report=_delivery_report(message),
        part_count=sum(1 for _ in message.walk()),
        depth=tree.depth,
    )


def _date(value: object) -> datetime | None:
    """The Date header in UTC; None when it is not a date (better none than a wrong one).

    mail-parser's reader knows RFC 5322's obsolete forms (two-digit years, named zones,
    comments) and refuses impossible dates; a date without a zone, which some clients
    write, is read by the standard library's and taken as UTC."""
    text = header_text(value)
    parsed = mailparser_date(text).value
    if isinstance(parsed, datetime):
        return parsed.astimezone(UTC)
    try:
        date = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):  # what _parsedate_tz lets through
        return None
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


def _delivery_report(message: Message) -> DeliveryReport | None:
    if message.get_content_type() != "multipart/report":
        return None
    failures: list[DeliveryFailure] = []
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            failures.extend(_failures(part))
    return DeliveryReport(tuple(failures))


def _failures(part: Message) -> Iterator[DeliveryFailure]:
    # compat32 parses message/delivery-status into one block of fields per recipient.
    for block in part.get_payload() if part.is_multipart() else ():
        if not isinstance(block, Message) or header_text(block.get("Action")).lower() != "failed":
            continue
        recipient = header_text(block.get("Final-Recipient") or block.get("Original-Recipient"))
        address = headers.clean_address(recipient.split(";", 1)[-1])
        if address:
            diagnostic = header_text(block.get("Diagnostic-Code")).split(";", 1)[-1].strip()
            yield DeliveryFailure(address, header_text(block.get("Status")), diagnostic)


def _stand_in_id(message: Message, subject: str, text: str) -> str:
    """For mail without a Message-ID: one made from what identifies it (sender, date,
    subject, text), so an MTA's second delivery of it is still recognised as the same mail."""
    identity = "\x1f".join((str(message.get("From", "")), str(message.get("Date", "")), subject, text))
    digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"{digest}@{STAND_IN_DOMAIN}"


def _first_message_id(value: object) -> str | None:
    ids = message_ids(value)
    if ids:
        return ids[0]
    # Some senders omit the brackets; keep a bare id rather than lose threading.
    bare = header_text(value)
    return bare if bare and " " not in bare else None


def _addresses(message: Message, name: str) -> tuple[Address, ...]:
    found = headers.addresses(message.get_all(name, []))
    return tuple(Address(name=display, address=address) for display, address in found)


def _first(addresses: tuple[Address, ...]) -> Address | None:
    return addresses[0] if addresses else None


def _split_parts(message: Message, payloads: Payloads) -> tuple[list[str], list[str], list[Attachment]]:
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    for part in _leaf_parts(message):
        content_type = part.get_content_type()
        if _is_attachment(part):
            attachments.append(_attachment(part, payloads))
        elif content_type == "text/html":
            html_parts.append(decode_text(payloads.of(part), charset_of(part)))
        else:
            text_parts.append(decode_text(payloads.of(part), charset_of(part)))
    return text_parts, html_parts, attachments


def _leaf_parts(message: Message) -> Iterator[Message]:
    """Leaf parts in order, an attached message counting as one leaf (its text is not ours)."""
    if message.get_content_type() == "message/rfc822" and message.is_multipart():
        yield message
    elif message.is_multipart():
        for part in message.get_payload():
            if isinstance(part, Message):
                yield from _leaf_parts(part)
    else:
        yield message


def _is_attachment(part: Message) -> bool:
    """Body text is an inline text/plain or text/html part; everything else is attached."""
    disposition = raw_text(part.get("Content-Disposition")).split(";")[0].strip().lower()
    if disposition == "attachment" or _decoded_filename(part):
        return True
    # A multipart the feed parser could not split (no boundary parameter, or a boundary
    # that never appears) is a leaf: its body is the sender's text.
    return part.get_content_type() not in BODY_TYPES and part.get_content_maintype() != "multipart"


def _attachment(part: Message, payloads: Payloads) -> Attachment:
    content_type = _content_type(part)
    if content_type == "message/rfc822":
        inner = part.get_payload(0) if part.is_multipart() else None
        content = _message_bytes(inner) if isinstance(inner, Message) else payloads.of(part)
        default_name = header_text(inner.get("Subject", "")) if isinstance(inner, Message) else ""
        filename = safe_filename(_decoded_filename(part) or f"{default_name or 'mensaje'}.eml")
    else:
        content = payloads.of(part)
        filename = safe_filename(_decoded_filename(part) or "adjunto")
    content_id = one_line(raw_text(part.get("Content-ID")))[:MAX_CONTENT_ID].strip("<> ")
    return Attachment(filename=filename, content_type=content_type, content=content, content_id=content_id)


def _shown_inline(attachments: list[Attachment], html: str | None) -> tuple[Attachment, ...]:
    """Mark the parts the HTML shows by Content-ID (RFC 2392 cid: URLs, URL-encoded)."""
    shown = {unquote(found).lower() for found in CID_URL.findall(html or "")}
    return tuple(replace(a, inline=True) if a.content_id and a.content_id.lower() in shown else a for a in attachments)


def _content_type(part: Message) -> str:
    kind = one_line(part.get_content_type())
    return kind if CONTENT_TYPE.fullmatch(kind) else "application/octet-stream"


def _decoded_filename(part: Message) -> str:
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = part.get_param(param, None, header)
        if isinstance(value, tuple):  # RFC 2231 (filename*=charset'lang'...): bytes as latin-1
            charset, _, encoded = value
            return one_line(decode_bytes(str(encoded).encode("latin-1", "surrogateescape"), charset))
        if value:
            # Quoted, raw 8-bit, or RFC 2047 words, which some clients put in a name anyway.
            return header_text(value)
    return ""


def safe_filename(name: str) -> str:
    """A file name that is only a name: no directories, control characters or NUL."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = UNSAFE_FILENAME_CHARS.sub("_", name).strip(" .")
    return name[:MAX_FILENAME_LENGTH] or "adjunto"


class Payloads:
    """Decoded part bodies: from the parsed tree, or from the raw mail for the bodies set
    aside before parsing (set_aside.py)."""

    def __init__(self, set_aside: dict[str, memoryview]) -> None:
        self.set_aside = set_aside

    def of(self, part: Message) -> bytes:
        encoded = stored_payload(part)
        body = self.set_aside.get(encoded.strip()) if self.set_aside and isinstance(encoded, str) else None
        if body is not None:
            with contextlib.suppress(ValueError):  # binascii.Error: bad padding
                return binascii.a2b_base64(body)
            part.set_payload(str(body, "ascii", "surrogateescape"))  # as the full parse has it
        return _payload(part)


def _payload(part: Message) -> bytes:
    encoded = stored_payload(part)
    if isinstance(encoded, str) and str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
        with contextlib.suppress(ValueError):  # binascii.Error (bad padding), or not ASCII
            # What get_payload(decode=True) returns for valid base64, without its copy of
            # every line (several times the attachment's size): here the payload and result.
            return binascii.a2b_base64(encoded)
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # compat32 tolerates bad base64, but be sure
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = stored_payload(part)
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _message_bytes(message: Message) -> bytes:
    buffer = BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False).flatten(message)
    except Exception:  # an attached message too broken to regenerate: keep its text form
        return message.as_string().encode("utf-8", "surrogateescape")
    return buffer.getvalue()


def decode_text(payload: bytes, declared_charset: str | None) -> str:
    """Decode body bytes: the declared charset (or its superset) when it fits, else UTF-8,
    else Windows-1252 (see headers.decode_bytes); line ends as "\n"."""
    return decode_bytes(payload, declared_charset).replace("\r\n", "\n").replace("\r", "\n")


def parse_address(value: str) -> str | None:
    """The lower-cased address in an envelope or header value, or None."""
    found = headers.addresses([value])
    return found[0][1] if found else None
