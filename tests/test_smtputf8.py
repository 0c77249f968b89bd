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


async def test_an_address_no_smtp_client_can_send_fails_alone_and_the_queue_moves_on(
    utf8_relay: tuple[Gateway, Sink],
) -> None:
    """A no-break space in an address (seen from copy-pasting webmail users) would end the
    SMTP command line: aiosmtplib refuses it. Left out of the envelope; the mail fails
    only when no one else is left, and the relay goes on with the next."""
    gateway, sink = utf8_relay
    odd = "jo\u00a0se@cliente.example"
    alone = MAIL.replace(CUSTOMER.encode(), odd.encode())
    with_cc = alone.replace(b"Subject: Factura", b"Cc: Ana <ana@cliente.example>\r\nSubject: Otra factura")
    with_cc = with_cc.replace(b"<idn-1@", b"<idn-2@")
    for raw in (alone, with_cc):
        await asyncio.to_thread(send_utf8_blocking, gateway.port, raw, "envelope@cliente.example")
    await gateway.drain()

    assert [row["status"] for row in spool_rows(gateway.settings.database.path)] == ["done", "done"]
    entries = await gateway.pipeline.outbox.summaries()
    [failed] = [entry for entry in entries if entry.status == "failed"]
    assert failed.recipients == (odd,) and "cannot be sent" in (failed.relay_reply or "")
    [partly] = [entry for entry in entries if entry.recipients == (odd, "ana@cliente.example")]
    assert partly.status == "sent" and "refused" in (partly.relay_reply or "")
    assert len(sink.handler.to("ana@cliente.example")) == 1
    assert len(sink.handler.to(AGENTS)) == 2
