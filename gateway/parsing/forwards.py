"""What an agent asks for when writing to their open address: a ticket for a customer.

Pure code. Three forms, tried in this order:
1. the customer's mail attached whole (`message/rfc822`: Outlook's "Forward as attachment",
   Thunderbird's "Forward as Attachment"): its own From, Subject, Cc, text and files;
2. a forward block in the text: Gmail's "---------- Forwarded message ---------", Outlook's
   "-----Original Message-----" or its line of underscores, Apple Mail's "Begin forwarded
   message:", in Spanish, English or Portuguese, followed by From/De, Subject/Asunto, Cc
   lines (Outlook writes "Name [mailto:a@x]" and separates addresses with ";");
3. a `#solicitante Name <address>` line: a ticket from scratch, the rest of the text its
   first message.
What the agent wrote above the forward is their note, with its `#` command lines. The
forwarded headers are only what the agent's mail program wrote: the agent vouches for
them (their open address proves it is them); nothing here proves anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.model import Address, Attachment, ParsedMail
from gateway.parsing.headers import addresses
from gateway.parsing.mail import parse_mail
from gateway.rules.commands import is_address

FORWARD_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|mensaje reenviado|mensagem encaminhada|original message"
    r"|mensaje original|mensagem original)\s*-{2,}"
    r"|_{20,}"
    r"|(?:begin forwarded message|inicio del mensaje reenviado|in[ií]cio da mensagem reencaminhada):?)\s*$",
    re.IGNORECASE,
)
HEADER_LINE = re.compile(r"^\s*\*?([A-Za-zÁÉÍÓÚáéíóú]+)\*?\s*:\s*(.*)$")
HEADER_NAMES = {
    "from": "from", "de": "from",
    "subject": "subject", "asunto": "subject", "assunto": "subject",
    "cc": "cc",
    "to": "to", "para": "to",
    "date": "date", "sent": "date", "fecha": "date", "enviado": "date", "data": "date", "enviada": "date",
}  # fmt: skip
REQUESTER_LINE = re.compile(r"^\s*#(?:solicitante|requester|solicitante:)\s+(.+)$", re.IGNORECASE)
MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.IGNORECASE)
MAX_HEADER_LINES = 20  # a forward block's header is a few lines; past this it is text


@dataclass(frozen=True)
class Request:
    """A ticket an agent asks to open for a customer."""

    requester: Address
    subject: str
    text: str  # what the customer wrote (empty when opened from scratch)
    note: str  # what the agent wrote, command lines included
    cc: tuple[Address, ...]
    attachments: tuple[Attachment, ...]
    forwarded: bool  # False: from scratch (#solicitante)


def request_in(mail: ParsedMail, inner_raw: bytes | None = None) -> Request | None:
    """The request the agent's mail makes, or None when it names no customer. `inner_raw`:
    the bytes of its first message/rfc822 attachment, if any (read by the caller)."""
    if inner_raw is not None:
        attached = _attached(mail, inner_raw)
        if attached is not None:
            return attached
    block = _forward_block(mail)
    return block if block is not None else _from_scratch(mail)


def attached_message(mail: ParsedMail) -> Attachment | None:
    return next((a for a in mail.attachments if a.content_type == "message/rfc822"), None)


def _attached(mail: ParsedMail, raw: bytes) -> Request | None:
    inner = parse_mail(raw)
    if inner.sender is None:
        return None
    others = tuple(a for a in mail.attachments if a.content_type != "message/rfc822" and not a.inline)
    return Request(
        requester=inner.sender, subject=inner.subject, text=inner.text.strip(), note=mail.new_part.strip(),
        cc=(*inner.to, *inner.cc), attachments=(*inner.attachments, *others), forwarded=True,
    )  # fmt: skip


def _forward_block(mail: ParsedMail) -> Request | None:
    lines = mail.text.splitlines()
    start = next((index for index, line in enumerate(lines) if FORWARD_MARKER.match(line)), None)
    if start is None:
        return None
    headers, body_start = _block_headers(lines, start + 1)
    sender = _one_address(headers.get("from", ""))
    if sender is None:
        return None
    cc = (*_addresses(headers.get("to", "")), *_addresses(headers.get("cc", "")))
    text = "\n".join(_unquoted(lines[body_start:])).strip()
    note = "\n".join(lines[:start]).strip()
    attachments = tuple(a for a in mail.attachments if not a.inline)
    return Request(sender, headers.get("subject", mail.subject), text, note, cc, attachments, True)


def _block_headers(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """The forwarded headers below a marker (continuation lines joined) and where the text begins."""
    headers: dict[str, str] = {}
    last = ""
    index = start
    while index < len(lines) and index < start + MAX_HEADER_LINES:
        line = lines[index].lstrip(">").rstrip()
        match = HEADER_LINE.match(line)
        name = HEADER_NAMES.get(match.group(1).lower()) if match else None
        if match is not None and name is not None:
            headers.setdefault(name, match.group(2).strip())
            last = name
        elif line.strip() and last and line[:1].isspace():
            headers[last] += " " + line.strip()
        elif line.strip() or headers:
            break
        index += 1
    return headers, index


def _unquoted(lines: list[str]) -> list[str]:
    """Apple Mail and some webmails quote the forwarded text with "> ": take it off."""
    if lines and all(line.startswith(">") or not line.strip() for line in lines):
        return [line[1:].removeprefix(" ") if line.startswith(">") else line for line in lines]
    return lines


def _from_scratch(mail: ParsedMail) -> Request | None:
    lines = mail.new_part.splitlines()
    for index, line in enumerate(lines):
        match = REQUESTER_LINE.match(line)
        if match is None:
            continue
        requester = _one_address(match.group(1))
        if requester is None:
            return None
        note = "\n".join(lines[:index] + lines[index + 1 :]).strip()
        attachments = tuple(a for a in mail.attachments if not a.inline)
        return Request(requester, mail.subject, "", note, (), attachments, False)
    return None


def _one_address(value: str) -> Address | None:
    found = _addresses(value)
    return found[0] if found else None


def _addresses(value: str) -> tuple[Address, ...]:
    value = MAILTO.sub(r"<\1>", value.replace("*", "")).replace(";", ",")
    return tuple(Address(name.strip(), address) for name, address in addresses([value]) if is_address(address))
