"""What customers read, end to end through the listener and a sink relay: dates in the
mailbox's zone, greetings, each status's own words, no second copies, follow-ups that keep
their context, incident sub-status news."""

from __future__ import annotations

import pytest

from gateway.daemon import Gateway
from gateway.settings import Settings
from tests.conftest import MAILBOX, Sink, make_mail, send
from tests.support.desk import AGENT, AGENTS, CC, REQUESTER, customer_writes, last_to, opened, text_of, ticket

REQUESTER_FROM = "María José Pérez <mjperez@distribuidora-andes.example>"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test desk, its Spanish mailbox in Santiago's time."""
    first = settings.mailboxes[0].model_copy(update={"timezone": "America/Santiago"})
    return settings.model_copy(update={"mailboxes": [first, *settings.mailboxes[1:]]})


async def agent_writes(gateway: Gateway, relay: Sink, body: str, cc: str | None = None) -> None:
    """An agent hits Reply on the latest notification of TK-000001, maybe copying someone."""
    notice = last_to(relay, AGENTS)
    reply_to = notice.message["Reply-To"]
    headers = {"In-Reply-To": notice.message["Message-ID"]}
    raw = make_mail(f"Re: {notice.message['Subject']}", body=body, sender=AGENT, to=reply_to, cc=cc,
                    extra_headers=headers)  # fmt: skip
    await send(gateway, raw, [reply_to])
    await gateway.drain()


async def test_dates_are_local_and_in_the_mailbox_language(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)  # Date: Fri, 20 Nov 2026 09:15:00 -0300
    for mail in (last_to(relay, REQUESTER), last_to(relay, AGENTS)):
        text = text_of(mail)
        assert "(vie. 20 nov. 2026, 09:15) escribió:" in text
        assert "2026-11-20T" not in text and "+00:00" not in text


async def test_greeting_by_given_name_and_none_from_a_bare_address(gateway: Gateway, relay: Sink) -> None:
    outlook = make_mail("Factura rechazada", sender='"Ibáñez, Íñigo" <iibanez@cliente.example>')
    bare = make_mail("Otra factura rechazada", sender="rrojas@cliente.example")
    for raw in (outlook, bare):
        await send(gateway, raw)
    await gateway.drain()
    assert text_of(last_to(relay, "iibanez@cliente.example")).splitlines()[:2] == ["Hola Íñigo,", ""]
    greeting = text_of(last_to(relay, "rrojas@cliente.example")).splitlines()[0]
    assert greeting == "Hola,"


async def test_waiting_for_the_customer_asks_for_what_is_needed(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    await agent_writes(gateway, relay, "¿Nos envía el XML de la factura rechazada?")  # → waiting, the reply asks
    await agent_writes(gateway, relay, "#estado resuelto")
    before = len(relay.received)
    await agent_writes(gateway, relay, "#estado esperando")  # resolved → waiting: not a reopening
    [told] = relay.received[before:]
    text = text_of(told)
    assert sorted(told.rcpt_tos) == [CC, REQUESTER]
    assert "necesitamos información de su parte" in text and "¿Nos envía el XML de la factura rechazada?" in text
    assert "reabierto" not in text and "Esperando su respuesta" in told.message["Subject"]
    assert (await ticket(gateway))["status"] == "waiting_customer"


async def test_nobody_gets_a_second_copy_of_a_mail_they_were_on(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)  # Jorge (CC) is a participant
    subject = "Re: [#TK-000001] Error al emitir factura electrónica"
    await customer_writes(gateway, subject, "Adjunto más detalles.")  # Jorge not on it: he gets our copy
    assert "Adjunto más detalles." in text_of(last_to(relay, CC))

    before = len(relay.received)
    await send(gateway, make_mail(subject, body="Sigue fallando.", sender=REQUESTER_FROM, cc=CC))
    await gateway.drain()
    assert [mail.rcpt_tos for mail in relay.received[before:]] == [[AGENTS]]  # Jorge read it in his inbox

    before = len(relay.received)
    await agent_writes(gateway, relay, "Lo revisamos y le escribimos hoy.", cc=CC)  # the agent copied Jorge
    [answer] = relay.received[before:]
    assert answer.rcpt_tos == [REQUESTER] and "Lo revisamos" in text_of(answer)


async def test_follow_up_of_a_closed_ticket_keeps_its_context(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)  # RUT, company, phone, incident, urgent, Jorge in CC
    await agent_writes(gateway, relay, "#estado cerrado")
    closed_subject = last_to(relay, REQUESTER).message["Subject"]
    assert closed_subject.endswith("· Cerrado")
    await customer_writes(gateway, f"RE: {closed_subject}", "Volvió a ocurrir el mismo error hoy.")
    old, new = await ticket(gateway), await ticket(gateway, "TK-000002")
    assert new["follow_up_of"] == "TK-000001" and new["subject"] == old["subject"]
    same = ("type", "priority", "company", "fiscal_id", "fiscal_id_valid", "phone", "country", "brand", "product")
    assert {key: new[key] for key in same} == {key: old[key] for key in same}
    assert (new["type"], new["priority"], new["fiscal_id"]) == ("incident", "urgent", "76.086.428-5")
    assert new["cc"] == [CC]
    assert "TK-000002" in str(last_to(relay, CC).message["Subject"])  # Jorge hears of the follow-up too
    notice = last_to(relay, AGENTS)
    assert "TK-000002" in notice.message["Subject"] and "Seguimiento del ticket TK-000001" in text_of(notice)


async def test_incident_sub_status_changes_reach_the_customer(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    before = len(relay.received)
    await agent_writes(gateway, relay, "#incidencia esperando creación")
    await agent_writes(gateway, relay, "#incidencia incidencia en progreso")
    told = [mail for mail in relay.received[before:] if REQUESTER in mail.rcpt_tos]
    assert [mail.message["Subject"].rsplit("· ", 1)[1] for mail in told] == [
        "Esperando creación", "Incidencia en progreso",
    ]  # fmt: skip
    assert "La incidencia asociada a su ticket TK-000001 pasó a: Incidencia en progreso." in text_of(told[-1])
    assert MAILBOX not in told[-1].rcpt_tos
