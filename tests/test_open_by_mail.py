"""Agents open tickets for customers by mail, through their signed open address: a forward
(block or attached message) or `#solicitante`; forgeries and our own mail open nothing."""

from __future__ import annotations

import re
from email.message import EmailMessage

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, ReceivedMail, Sink, crlf, make_mail, send
from tests.support.desk import AGENT, AGENTS, last_to, opened, text_of, ticket

CUSTOMER = "maria@cliente.example"
COLLEAGUE = "pedro@cliente.example"
AGENT_ADDRESS = "csoto@estela.example"
OPEN_ADDRESS = re.compile(r"soporte\.latam\+abrir\.[0-9a-f]{8}\.[0-9a-f]{16}@estela\.example")

GMAIL_FORWARD = """#prioridad alta
Me llamó por teléfono; lo dejo abierto a su nombre.

---------- Forwarded message ---------
From: María Núñez <maria@cliente.example>
Date: Mon, 2 Nov 2026 at 10:00
Subject: No puedo emitir facturas
To: Carla Soto <csoto@estela.example>
Cc: Pedro Rojas <pedro@cliente.example>


Hola Carla, desde ayer no puedo emitir facturas.
RUT: 76.086.428-5
"""


def open_address_in(notice: ReceivedMail) -> str:
    found = OPEN_ADDRESS.search(text_of(notice))
    assert found, "the agents' notification shows no open address"
    return found[0]


async def agent_sends(gateway: Gateway, raw: bytes, to: str) -> None:
    await send(gateway, raw, [to])
    await gateway.drain()


async def test_a_forward_opens_the_customers_ticket(gateway: Gateway, relay: Sink) -> None:
    address = open_address_in(await opened(gateway, relay))
    before = len(relay.received)
    await agent_sends(gateway, make_mail("Fwd: No puedo emitir facturas", GMAIL_FORWARD, AGENT, address), address)

    tk = await ticket(gateway, "TK-000002")
    assert (tk["requester"], tk["subject"], tk["priority"]) == (CUSTOMER, "No puedo emitir facturas", "high")
    assert (tk["assignee"], tk["fiscal_id_valid"]) == (AGENT_ADDRESS, True)
    assert tk["cc"] == [COLLEAGUE]
    acknowledgement = last_to(relay, CUSTOMER)
    assert COLLEAGUE in acknowledgement.rcpt_tos and AGENT_ADDRESS not in acknowledgement.rcpt_tos
    assert "TK-000002" in acknowledgement.message["Subject"]
    assert "Me llamó por teléfono" not in acknowledgement.raw.decode()  # the agent's note stays internal
    assert any(AGENTS in mail.rcpt_tos for mail in relay.received[before:])
    kinds = [(m["visibility"], m["from"]) for m in tk["messages"]]
    assert kinds == [("public", CUSTOMER), ("internal", AGENT_ADDRESS)]
    assert any(h["field"] == "opened_by" and h["new"] == AGENT_ADDRESS for h in tk["history"])


async def test_an_attached_message_opens_the_ticket_with_its_files(gateway: Gateway, relay: Sink) -> None:
    address = open_address_in(await opened(gateway, relay))
    inner = EmailMessage()
    inner["From"] = f"María Núñez <{CUSTOMER}>"
    inner["To"] = "soporte@otra.example"
    inner["Cc"] = COLLEAGUE
    inner["Subject"] = "Factura rechazada"
    inner.set_content("Adjunto la factura que el SII rechazó.")
    inner.add_attachment(b"%PDF-1.4 factura", maintype="application", subtype="pdf", filename="factura.pdf")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = AGENT, address, "Fwd: Factura rechazada"
    outer["Message-ID"] = "<fwd-attached@estela.example>"
    outer.set_content("#tipo incidente\n")
    outer.add_attachment(inner)
    await agent_sends(gateway, crlf(outer.as_bytes()), address)

    tk = await ticket(gateway, "TK-000002")
    assert (tk["requester"], tk["subject"], tk["type"]) == (CUSTOMER, "Factura rechazada", "incident")
    assert set(tk["cc"]) == {"soporte@otra.example", COLLEAGUE}
    first = tk["messages"][0]
    assert [file["filename"] for file in first["attachments"]] == ["factura.pdf"]
    assert "Adjunto la factura" in text_of(last_to(relay, CUSTOMER))


async def test_solicitante_opens_one_from_scratch(gateway: Gateway, relay: Sink) -> None:
    address = open_address_in(await opened(gateway, relay))
    body = (
        "#solicitante María Núñez <maria@cliente.example>\n#cc +pedro@cliente.example\n#tipo consulta\n"
        "#prioridad baja\nEmpresa: Cliente SpA\n\nLlamó para preguntar por el plan anual."
    )
    await agent_sends(gateway, make_mail("Consulta plan anual", body, AGENT, address), address)
    tk = await ticket(gateway, "TK-000002")
    assert (tk["requester"], tk["subject"], tk["priority"]) == (CUSTOMER, "Consulta plan anual", "low")
    assert (tk["company"], tk["assignee"]) == ("Cliente SpA", AGENT_ADDRESS)
    assert tk["cc"] == [COLLEAGUE]
    acknowledgement = last_to(relay, CUSTOMER)
    assert "#solicitante" not in acknowledgement.raw.decode() and "Llamó para preguntar" in text_of(acknowledgement)


async def test_a_forged_open_address_opens_nothing_and_the_agent_is_told(gateway: Gateway, relay: Sink) -> None:
    address = open_address_in(await opened(gateway, relay))
    forged = re.sub(r"\.[0-9a-f]{16}@", "." + "0" * 16 + "@", address)  # the MAC replaced
    assert forged != address
    before = len(relay.received)
    await agent_sends(gateway, make_mail("Fwd: No puedo emitir facturas", GMAIL_FORWARD, AGENT, forged), forged)
    assert await gateway.pipeline.queries.show_ticket("TK-000002") is None
    [told] = relay.received[before:]
    assert told.rcpt_tos == [AGENT_ADDRESS]
    assert "No se abrió ningún ticket" in text_of(told) and "does not verify" in text_of(told)


async def test_a_forward_of_our_own_mail_is_refused(gateway: Gateway, relay: Sink) -> None:
    address = open_address_in(await opened(gateway, relay))
    ours = GMAIL_FORWARD.replace("María Núñez <maria@cliente.example>", f"Soporte <{MAILBOX}>")
    before = len(relay.received)
    await agent_sends(gateway, make_mail("Fwd: algo nuestro", ours, AGENT, address), address)
    assert await gateway.pipeline.queries.show_ticket("TK-000002") is None
    [told] = relay.received[before:]
    assert told.rcpt_tos == [AGENT_ADDRESS] and "one of our own addresses" in text_of(told)
