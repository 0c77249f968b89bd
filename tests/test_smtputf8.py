"""Internationalised addresses (RFC 6531/6532): mail from `josé@cliente.example` becomes a
ticket, its acknowledgement goes out with SMTPUTF8 when the relay offers it, and where the
relay does not, only that one notification fails, with the reason, and the queue moves on."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.outbound.outbox import OutboundMail
from gateway.settings import load_settings
from tests.conftest import MAILBOX, Sink, run_cli, spool_rows, write_config

CUSTOMER = "josé@cliente.example"
AGENTS = "agentes@estela.example"
MAIL = (
    "From: José Muñoz <josé@cliente.example>\r\n"
    f"To: {MAILBOX}\r\n"
    "Subject: Factura con tilde\r\n"
    "Message-ID: <idn-1@cliente.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hola, la factura no llega.\r\n"
).encode()


def send_utf8_blocking(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [MAILBOX], raw, mail_options=["SMTPUTF8"])


async def start(tmp_path: Path, smtputf8: bool) -> tuple[Gateway, Sink]:
    sink = await Sink(smtputf8=smtputf8).start()
    gateway = Gateway(load_settings(write_config(tmp_path, relay_port=sink.port)))
    await gateway.start()
    return gateway, sink


@pytest.fixture
async def utf8_relay(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Sink]]:
    gateway, sink = await start(tmp_path, smtputf8=True)
    yield gateway, sink
    await gateway.stop()
    await sink.stop()


@pytest.fixture
async def ascii_relay(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Sink]]:
    gateway, sink = await start(tmp_path, smtputf8=False)
    yield gateway, sink
    await gateway.stop()
    await sink.stop()


async def test_mail_from_an_idn_address_is_a_ticket_acknowledged_with_smtputf8(
    utf8_relay: tuple[Gateway, Sink],
) -> None:
    gateway, sink = utf8_relay
    await asyncio.to_thread(send_utf8_blocking, gateway.port, MAIL, CUSTOMER)
    await gateway.drain()

    assert [row["status"] for row in spool_rows(gateway.settings.database.path)] == ["done"]
    [ticket] = await gateway.pipeline.queries.list_tickets()
    assert ticket["requester"] == CUSTOMER
    [ack] = sink.handler.to(CUSTOMER)
    assert ack.rcpt_tos == [CUSTOMER]
    assert "SMTPUTF8" in [option.upper() for option in ack.mail_options]
    assert f"<{CUSTOMER}>\r\n".encode() in ack.raw  # RFC 6532: the address itself, in UTF-8
    message = email.message_from_string(ack.raw.decode("utf-8"), policy=email.policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == [CUSTOMER]
    assert message["Subject"].startswith("[#TK-000001]")
    assert sink.handler.to(AGENTS)
    assert {entry.status for entry in await gateway.pipeline.outbox.summaries()} == {"sent"}


async def test_relay_without_smtputf8_fails_only_that_notification(
    ascii_relay: tuple[Gateway, Sink], tmp_path: Path
) -> None:
    gateway, sink = ascii_relay
    await asyncio.to_thread(send_utf8_blocking, gateway.port, MAIL, CUSTOMER)
    await gateway.drain()

    assert [row["status"] for row in spool_rows(gateway.settings.database.path)] == ["done"]
    assert len(await gateway.pipeline.queries.list_tickets()) == 1
    assert sink.handler.to(CUSTOMER) == []
    [notice] = sink.handler.to(AGENTS)  # the agents still hear of it
    assert notice.message["Subject"].startswith("[#TK-000001]")
    [failed] = await gateway.pipeline.outbox.summaries("failed")
    assert failed.recipients == (CUSTOMER,) and failed.attempts == 1
    assert "SMTPUTF8" in (failed.relay_reply or "")

    listing = run_cli(tmp_path / "config.toml", "outbox", "list", "--status", "failed")
    assert listing.returncode == 0
    text = listing.stdout.decode()
    assert CUSTOMER in text and "SMTPUTF8" in text


ODD = "jo\u00a0se@cliente.example"  # a no-break space, from copy-pasting webmail users


async def test_an_address_with_unicode_whitespace_never_becomes_a_participant(
    utf8_relay: tuple[Gateway, Sink],
) -> None:
    """Split at the no-break space it would be somebody else's address (`se@cliente.example`);
    whole, no SMTP client can send to it. The requester is then the envelope sender."""
    gateway, sink = utf8_relay
    raw = MAIL.replace(CUSTOMER.encode(), ODD.encode()).replace(
        b"Subject: Factura", f"Cc: Raro <{ODD}>, Ana <ana@cliente.example>\r\nSubject: Factura".encode()
    )
    await asyncio.to_thread(send_utf8_blocking, gateway.port, raw, "envelope@cliente.example")
    await gateway.drain()

    ticket = await gateway.pipeline.store.ticket_by_number("TK-000001")
    assert ticket is not None
    view = await gateway.pipeline.store.ticket_view(ticket.id)
    assert view.requester.address == "envelope@cliente.example"
    assert [person.address for person in view.cc] == ["ana@cliente.example"]
    assert sink.handler.to("se@cliente.example") == []
    assert all(ODD not in entry.recipients for entry in await gateway.pipeline.outbox.summaries())


async def test_a_row_no_smtp_client_can_send_fails_alone_and_the_queue_moves_on(
    utf8_relay: tuple[Gateway, Sink],
) -> None:
    """Whatever put it there (a row from an older version, a path that let one through), an
    address aiosmtplib refuses is left out of the envelope; the row fails only when no one
    else is left, and the relay goes on with the next."""
    gateway, sink = utf8_relay
    async with gateway.pipeline.database.transaction():
        for number, recipients in ((1, (ODD,)), (2, (ODD, "ana@cliente.example"))):
            raw = f"From: {MAILBOX}\r\nTo: x\r\nSubject: prueba {number}\r\n\r\nhola\r\n".encode()
            gateway.pipeline.outbox.add(
                None, OutboundMail("test", f"odd-{number}@estela.example", MAILBOX, recipients, raw)
            )
    await asyncio.to_thread(send_utf8_blocking, gateway.port, MAIL, "envelope@cliente.example")
    await gateway.drain()

    entries = {entry.message_id: entry for entry in await gateway.pipeline.outbox.summaries()}
    alone, partly = entries.pop("odd-1@estela.example"), entries.pop("odd-2@estela.example")
    assert alone.status == "failed" and "cannot be sent" in (alone.relay_reply or "")
    assert partly.status == "sent" and "refused" in (partly.relay_reply or "")
    assert len(sink.handler.to("ana@cliente.example")) == 1
    assert {entry.status for entry in entries.values()} == {"sent"}  # the ticket's own mail
    assert len(sink.handler.to(CUSTOMER)) == 1 and len(sink.handler.to(AGENTS)) == 1
