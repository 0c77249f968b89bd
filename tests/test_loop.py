"""A mail loop, for real: the relay is an auto-responder that answers every mail it gets,
as a naive vacation script would (no Auto-Submitted, no Precedence), back to the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP

from gateway.daemon import Gateway
from gateway.settings import load_settings
from tests.conftest import crlf, make_mail, send, write_config

MAX_ROUNDS = 50
CUSTOMER = "cliente@empresa.example"


class AutoResponder:
    """An SMTP peer that answers each mail to its Reply-To (else From), as its recipient."""

    def __init__(self) -> None:
        self.gateway_port = 0
        self.received = 0
        self.answered = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received += 1
        for recipient in envelope.rcpt_tos:
            task = asyncio.create_task(self._answer(recipient, envelope.original_content))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return "250 OK"

    async def _answer(self, as_address: str, raw: bytes) -> None:
        from email import message_from_bytes

        original = message_from_bytes(raw)
        answer = EmailMessage()
        answer["From"] = as_address
        to = parseaddr(str(original.get("Reply-To") or original.get("From")))[1]
        answer["To"] = to
        answer["Subject"] = f"Re: {original.get('Subject', '')}"
        answer["Message-ID"] = make_msgid(domain="responder.example")
        answer["In-Reply-To"] = str(original.get("Message-ID", ""))
        answer.set_content("Gracias por su mensaje. Estaré fuera hasta el lunes.")
        with contextlib.suppress(aiosmtplib.SMTPException):  # the gateway may refuse: that is fine
            await aiosmtplib.send(crlf(answer.as_bytes()), sender=as_address, recipients=[to],
                                  hostname="127.0.0.1", port=self.gateway_port)  # fmt: skip
            self.answered += 1


async def settle(gateway: Gateway, responder: AutoResponder) -> None:
    """Process, relay and answer in rounds until a round moves no mail (a loop never stops)."""
    for _ in range(MAX_ROUNDS):
        before = (responder.received, responder.answered)
        await gateway.drain()  # every mail relayed has reached the responder when this returns
        while responder.tasks:  # and every answer is spooled at the gateway when these end
            await asyncio.gather(*list(responder.tasks))
        if (responder.received, responder.answered) == before:
            return
    raise AssertionError(f"mail still moving after {MAX_ROUNDS} rounds: a loop")


async def test_an_auto_responder_peer_does_not_make_a_loop(tmp_path: Path) -> None:
    responder = AutoResponder()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(responder, hostname="responder.example"), "127.0.0.1", 0
    )
    relay_port = server.sockets[0].getsockname()[1]
    gateway = Gateway(load_settings(write_config(tmp_path, relay_port=relay_port)))
    await gateway.start()
    responder.gateway_port = gateway.port
    try:
        await send(gateway, make_mail("Factura rechazada", sender=f"Cliente <{CUSTOMER}>"))
        await settle(gateway, responder)
        tickets = await gateway.pipeline.queries.list_tickets()
        acknowledgements = [
            entry for entry in await gateway.pipeline.outbox.summaries()
            if entry.template == "acknowledgement" and CUSTOMER in entry.recipients
        ]  # fmt: skip
    finally:
        await gateway.stop()
        server.close()
    assert len(tickets) == 1
    assert len(acknowledgements) <= 1
    assert responder.answered >= 1  # the responder did answer: the loop was offered and refused
