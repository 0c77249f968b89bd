"""What agents read (issue 15 points 4-6): what customers did, told in words; no agent mail
vanishing; the whole ticket at a glance. Through the real listener and a sink relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.rules.recipients import customer_did, entry_kind, rating_told
from tests.conftest import MAILBOX, Sink, make_mail, send, write_config
from tests.support.desk import (
    AGENT,
    AGENTS,
    CC,
    REQUESTER,
    agent_answers,
    customer_writes,
    last_to,
    opened,
    rating_address,
    text_of,
    ticket,
)

AGENT_ADDRESS = "csoto@estela.example"


@pytest.fixture
def config_path(tmp_path: Path, relay: Sink, request: pytest.FixtureRequest) -> Path:
    """The test config; `language` of the mailboxes by indirect parametrize (default es)."""
    path = write_config(tmp_path, relay_port=relay.port)
    language = getattr(request, "param", "es")
    path.write_text(path.read_text(encoding="utf-8").replace('language = "es"', f'language = "{language}"'))
    return path


async def resolved_by_agent(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado resuelto")


# -- point 4: agents hear what customers do -------------------------------------------------


async def test_agents_hear_a_rating_with_its_comment_and_a_refused_second_one(gateway: Gateway, relay: Sink) -> None:
    await resolved_by_agent(gateway, relay)
    not_helpful = rating_address(last_to(relay, REQUESTER), "No")
    await customer_writes(gateway, "[#TK-000001] No me ayudó", "El pedido nunca llegó", to=not_helpful)
    rated = last_to(relay, AGENTS)
    assert "Calificación: No me ayudó" in rated.message["Subject"]
    assert "Calificación: No me ayudó — «El pedido nunca llegó»" in text_of(rated)
    assert "María José Pérez calificó la resolución" in text_of(rated)

    before = len(relay.handler.to(AGENTS))
    await customer_writes(gateway, "[#TK-000001] No me ayudó", "Otra vez", to=not_helpful)
    [again] = relay.handler.to(AGENTS)[before:]
    assert "no cuenta" in again.message["Subject"]
    assert "NO se registró" in text_of(again) and "«Otra vez»" in text_of(again)
    assert (await ticket(gateway))["rating"]["comment"] == "El pedido nunca llegó"  # the first stands


async def test_agents_hear_what_the_requester_did_and_the_requester_can_rate(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER).message["Message-ID"]
    await customer_writes(gateway, "Re: [#TK-000001] factura", "#prioridad baja\n#resuelto\n\nYa funcionó, gracias.",
                          **{"In-Reply-To": acknowledgement})  # fmt: skip
    told = text_of(last_to(relay, AGENTS))
    assert "María José Pérez marcó el ticket TK-000001 como resuelto." in told
    assert "María José Pérez cambió la prioridad del ticket TK-000001 a Bajo." in told
    confirmation = last_to(relay, REQUESTER)  # their own change, and the rating question with it
    assert "confirmación" in confirmation.message["Subject"]
    address = rating_address(confirmation, "Sí")
    await customer_writes(gateway, "[#TK-000001] Sí me ayudó", "", to=address)
    assert (await ticket(gateway))["rating"]["helpful"] is True
    assert "Calificación: Sí me ayudó" in text_of(last_to(relay, AGENTS))


async def test_agents_hear_that_the_requester_closed_it(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER).message["Message-ID"]
    await customer_writes(gateway, "Re: [#TK-000001] factura", "#cerrar", **{"In-Reply-To": acknowledgement})
    told = text_of(last_to(relay, AGENTS))
    assert "María José Pérez cerró el ticket TK-000001." in told and "respondió" not in told


# -- point 5: no agent mail vanishes silently -----------------------------------------------


async def test_a_fresh_agent_mail_is_kept_and_the_agent_told_how_to_answer(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    fresh = make_mail("[#TK-000001] factura", body="Hola María, ya revisamos su certificado.", sender=AGENT)
    await send(gateway, fresh, [MAILBOX])
    await gateway.drain()
    told = last_to(relay, AGENT_ADDRESS)
    assert told.rcpt_tos == [AGENT_ADDRESS] and told.message["Auto-Submitted"] == "auto-replied"
    assert "quedó guardado como nota interna" in text_of(told) and "responda a este correo" in text_of(told)
    assert "ya revisamos su certificado" in text_of(told)  # their words, to send again
    assert all("certificado" not in text_of(mail) for mail in relay.handler.to(REQUESTER))
    assert (await ticket(gateway))["messages"][-1]["visibility"] == "internal"

    await agent_answers(gateway, told, "Hola María, ya revisamos su certificado.")  # Reply on the notice
    assert "ya revisamos su certificado" in text_of(last_to(relay, REQUESTER))


async def test_commands_below_the_greeting_are_commands_not_text(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "Hola María,\n\n#estado resuelto\n#asignar Pedro Pérez <Pedro@Estela.example>"
                                         "\nYa quedó emitida la factura.\n\nSaludos")  # fmt: skip
    tk = await ticket(gateway)
    assert (tk["status"], tk["assignee"]) == ("resolved", "pedro@estela.example")
    for mail in relay.handler.to(REQUESTER)[1:]:
        assert "#estado" not in text_of(mail) and "#asignar" not in text_of(mail)
    assert "Ya quedó emitida la factura." in text_of(relay.handler.to(REQUESTER)[1])


async def test_assign_in_angle_brackets(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#asignar <pedro@estela.example>")
    assert (await ticket(gateway))["assignee"] == "pedro@estela.example"


async def test_a_command_error_quotes_the_agents_line_in_spanish(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "Hola,\n#Estado volando\nListo.")
    error = text_of(last_to(relay, AGENT_ADDRESS))
    assert "Usted escribió: #Estado volando" in error and "«volando» no es un estado" in error


@pytest.mark.parametrize(
    ("config_path", "said"),
    [("en", "'volando' is not a status"), ("pt", "'volando' não é um status")],
    indirect=["config_path"],
)
async def test_a_command_error_is_in_the_mailboxs_language(gateway: Gateway, relay: Sink, said: str) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "Hello,\n#estado volando")
    error = text_of(last_to(relay, AGENT_ADDRESS))
    assert said in error and "#estado volando" in error


# -- point 6: the whole ticket at a glance --------------------------------------------------


async def test_agent_notifications_show_every_field(gateway: Gateway, relay: Sink) -> None:
    notice = text_of(await opened(gateway, relay))
    for line in (
        "Empresa: Distribuidora Andes SpA", "RUT: 76.086.428-5 (válido)", "Teléfono: +56 2 2345 6789",
        "Tipo:", "Prioridad: Urgente", "Estado: Abierto", "Incidencia: —", "Asignado a: nadie",
        f"Con copia: {CC}",
    ):  # fmt: skip
        assert line in notice, line


async def test_a_rejected_reply_is_never_shown_as_conversation(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado volando\nTexto que nunca se envió.")
    await agent_answers(gateway, notice, "#asignar pedro@estela.example\n#incidencia nada")  # rejected too
    await customer_writes(gateway, "Re: [#TK-000001] factura", "¿Alguna novedad?")
    told = text_of(last_to(relay, AGENTS))
    assert "Asignado a: nadie" in told
    marked = "[Respuesta rechazada: NO se envió al cliente]\nCarla Soto"
    assert told.replace("\r\n", "\n").count(marked) == 2 and "Texto que nunca se envió." in told


# -- the pure decisions behind them ---------------------------------------------------------


@pytest.mark.parametrize(
    ("changed", "reopened", "did"),
    [
        ({"status": "resolved"}, False, ({"what": "resolved"},)),
        ({"status": "closed", "priority": "low"}, False, ({"what": "closed"}, {"what": "priority", "value": "low"})),
        ({}, True, ({"what": "reopened"},)),
        ({"status": "resolved"}, True, ({"what": "resolved"},)),  # the command says it; not "reopened" too
        ({}, False, ()),
    ],
)
def test_customer_did(changed: dict[str, str], reopened: bool, did: tuple[dict[str, str], ...]) -> None:
    assert customer_did(changed, reopened) == did


@pytest.mark.parametrize(
    ("visibility", "note", "kind"),
    [
        ("public", None, "message"),
        ("internal", "rejected: #estado volando: 'volando' is not a status", "rejected"),
        ("internal", "agent note", "note"),
        ("internal", None, "note"),
        ("system", "rating: helpful", "system"),
    ],
)
def test_entry_kind(visibility: str, note: str | None, kind: str) -> None:
    assert entry_kind(visibility, note) == kind


@pytest.mark.parametrize(
    ("comment", "shown"),
    [
        ("  El pedido nunca llegó\n", "El pedido nunca llegó"),
        ("a\nb\n\nc\nd\ne\nf", "a b c d e …"),
        ("x" * 400, "x" * 300 + "…"),
        ("", ""),
    ],
)
def test_rating_told_quotes_the_start_of_the_comment(comment: str, shown: str) -> None:
    assert rating_told(False, comment, recorded=True) == {"helpful": False, "comment": shown, "recorded": True}
