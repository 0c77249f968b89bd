"""A conversation with the desk, as its people write it: the customer opens a ticket, an
agent hits Reply on a notification, the test reads what each person was sent."""

from __future__ import annotations

import base64
import subprocess

import dkim

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, ReceivedMail, Sink, make_mail, sample, send

REQUESTER = "mjperez@distribuidora-andes.example"
CC = "jnunez@distribuidora-andes.example"
AGENTS = "agentes@estela.example"
AGENT = "Carla Soto <csoto@estela.example>"


def text_of(mail: ReceivedMail) -> str:
    return mail.message.get_body(("plain",)).get_content()


def last_to(relay: Sink, address: str) -> ReceivedMail:
    mails = relay.handler.to(address)
    assert mails, f"nothing was sent to {address}"
    return mails[-1]


async def agent_answers(gateway: Gateway, notice: ReceivedMail, body: str, sender: str = AGENT) -> None:
    """An agent hits Reply on a notification: to its signed Reply-To, in its thread."""
    reply_to = notice.message["Reply-To"]
    subject = f"Re: {notice.message['Subject']}"
    extra = {"In-Reply-To": notice.message["Message-ID"]}
    await send(gateway, make_mail(subject, body=body, sender=sender, to=reply_to, extra_headers=extra), [reply_to])
    await gateway.drain()


async def customer_writes(gateway: Gateway, subject: str, body: str, to: str = MAILBOX, **headers: str) -> None:
    sender = "María José Pérez <mjperez@distribuidora-andes.example>"
    await send(gateway, make_mail(subject, body=body, sender=sender, to=to, extra_headers=headers), [to])
    await gateway.drain()


async def ticket(gateway: Gateway, number: str = "TK-000001") -> dict:
    shown = await gateway.pipeline.queries.show_ticket(number)
    assert shown is not None, f"no ticket {number}"
    return shown


async def opened(gateway: Gateway, relay: Sink) -> ReceivedMail:
    """The customer opens TK-000001 with a CC and a RUT line; returns the agents' notice."""
    await send(gateway, sample("01-new-utf8-cc.eml"))
    await gateway.drain()
    return last_to(relay, AGENTS)


async def all_tickets(gateway: Gateway) -> list[dict]:
    return await gateway.pipeline.queries.list_tickets()


async def open_first_ticket(gateway: Gateway, relay: Sink) -> str:
    """TK-000001 from the shared sample; returns the acknowledgement's Message-ID."""
    await send(gateway, sample("01-new-utf8-cc.eml"))
    await gateway.drain()
    return str(last_to(relay, REQUESTER).message["Message-ID"])


def rating_address(mail: ReceivedMail, answer: str) -> str:
    line = next(line for line in text_of(mail).splitlines() if f"{answer} me ayudó: mailto:" in line)
    return line.split("mailto:")[1].split("?")[0]


def dkim_signed(raw: bytes, domain: str = "estela.example") -> tuple[bytes, object]:
    key = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True).stdout
    public = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=key, capture_output=True).stdout
    signature = dkim.sign(raw, b"sel", domain.encode(), key, include_headers=[b"from", b"to", b"subject"])
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes | None:  # our key, as DNS would give it
        return record if name == f"sel._domainkey.{domain}.".encode() else None

    return signature + raw, dns
