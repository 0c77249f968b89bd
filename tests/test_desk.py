"""A whole desk run by mail: agents answer and steer by replying, customers reopen and rate,
resolved tickets close by themselves, a reply to a closed ticket starts a linked one."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.daemon import Gateway
from tests.conftest import Sink, run_cli, sample, send
from tests.support.desk import (
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


async def test_full_scenario_by_mail_only(gateway: Gateway, relay: Sink, config_path: Path) -> None:
    notice = await opened(gateway, relay)
    tk = await ticket(gateway)
    assert (tk["fiscal_id"], tk["fiscal_id_valid"], tk["company"]) == ("76.086.428-5", True, "Distribuidora Andes SpA")

    # The agent answers with a command line and text; customer and CC get the text only.
    await agent_answers(gateway, notice, "#prioridad alta\n\nRenovamos el certificado. Intente de nuevo.")
    answer = last_to(relay, REQUESTER)
    assert CC in answer.rcpt_tos
    assert "Renovamos el certificado. Intente de nuevo." in text_of(answer)
    assert "#prioridad" not in text_of(answer) and "csoto@estela.example" not in str(answer.message["From"])
    assert answer.message["From"].addresses[0].display_name == "Carla Soto · Soporte LATAM"
    tk = await ticket(gateway)
    assert (tk["priority"], tk["status"]) == ("high", "waiting_customer")
    assert tk["first_response_at"] is not None

    # The agent resolves it with a command alone: the customer hears only of the status.
    before = len(relay.received)
    await agent_answers(gateway, notice, "#estado resuelto")
    [resolved] = relay.received[before:]
    assert sorted(resolved.rcpt_tos) == [CC, REQUESTER]
    assert "Resuelto" in text_of(resolved)
    assert (await ticket(gateway))["status"] == "resolved"

    # The customer clicks "Sí me ayudó": rated, not reopened.
    rate_yes = next(line for line in text_of(resolved).splitlines() if "Sí me ayudó: mailto:" in line)
    address = rate_yes.split("mailto:")[1].split("?")[0]
    await customer_writes(gateway, "[#TK-000001] Sí me ayudó", "Excelente atención, gracias.", to=address)
    tk = await ticket(gateway)
    assert tk["status"] == "resolved"
    assert tk["rating"]["helpful"] is True and "Excelente atención" in tk["rating"]["comment"]

    # 49 hours later the stale-ticket job closes it and tells the customer.
    later = (datetime.now(UTC) + timedelta(hours=49)).isoformat()
    result = run_cli(config_path, "tickets", "close-stale", "--now", later)
    assert result.returncode == 0 and b"TK-000001" in result.stdout
    await gateway.drain()
    assert "Cerrado" in text_of(last_to(relay, REQUESTER))
    tk = await ticket(gateway)
    assert tk["status"] == "closed" and tk["closed_at"] is not None
    assert [c["new"] for c in tk["history"] if c["field"] == "status"] == [
        "open", "waiting_customer", "resolved", "closed",
    ]  # fmt: skip

    # A reply to the closed ticket starts a new ticket linked to it; the customer is told.
    await send(gateway, sample("11-reply-after-close.eml"))
    await gateway.drain()
    follow_up = await ticket(gateway, "TK-000002")
    assert follow_up["follow_up_of"] == "TK-000001"
    assert follow_up["subject"] == "Error al emitir factura electrónica: rechazo del SII"
    assert (await ticket(gateway))["status"] == "closed"  # never reopened
    ack = last_to(relay, REQUESTER)
    assert ack.message["Subject"].startswith("[#TK-000002]") and "TK-000001" in text_of(ack)


async def test_agent_note_never_reaches_the_customer(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    before = len(relay.received)
    await agent_answers(gateway, notice, "#nota\nEl cliente usa un certificado vencido; no decirle aún.")
    assert relay.received[before:] == []
    assert all("certificado vencido" not in text_of(mail) for mail in relay.received if AGENTS not in mail.rcpt_tos)
    [note] = [m for m in (await ticket(gateway))["messages"] if m["visibility"] == "internal"]
    assert "certificado vencido" in note["body"]


async def test_unknown_command_reaches_only_the_agent(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    before = len(relay.received)
    await agent_answers(gateway, notice, "#estado volando\n#prioridad alta\n\nYa está listo.")
    [error] = relay.received[before:]
    assert error.rcpt_tos == ["csoto@estela.example"]
    assert "#estado volando" in text_of(error) and "volando" in text_of(error)
    tk = await ticket(gateway)
    assert (tk["priority"], tk["status"]) == ("urgent", "open")  # nothing applied


async def test_forged_agent_mail_changes_nothing(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    before = len(relay.received)
    await send(gateway, sample("10-forged-agent-commands.eml"))
    await gateway.drain()
    tk = await ticket(gateway)
    assert tk["status"] == "open" and "attacker@attacker.example" not in tk["cc"]
    [told] = relay.received[before:]  # the customer heard nothing; the agent it names is told
    assert told.rcpt_tos == ["csoto@estela.example"] and "nota interna" in text_of(told)
    assert tk["messages"][-1]["visibility"] == "internal"


async def test_sample_agent_reply_honoured_when_sent_to_the_signed_address(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    await gateway.drain()
    reply_to = last_to(relay, AGENTS).message["Reply-To"]
    await send(gateway, sample("08-agent-reply-commands.eml").replace(b"TK-000002", b"TK-000001"), [reply_to])
    await gateway.drain()
    tk = await ticket(gateway)
    assert (tk["priority"], tk["status"]) == ("high", "in_progress")  # the commands win over the default
    customer = last_to(relay, "amunoz@logistica-sur.example")
    assert "ya replicamos el error" in text_of(customer) and "#estado" not in text_of(customer)


async def test_my_tickets_lists_both_and_creates_none(gateway: Gateway, relay: Sink) -> None:
    await customer_writes(gateway, "Primer problema", "Hola")
    await customer_writes(gateway, "Segundo problema", "Hola otra vez")
    before = len(relay.received)
    await customer_writes(gateway, "Mis tickets", "")
    [listing] = relay.received[before:]
    assert listing.rcpt_tos == [REQUESTER]
    body = text_of(listing)
    assert body.index("TK-000002") < body.index("TK-000001")  # newest first
    assert "Primer problema" in body and "Abierto" in body
    assert len(await gateway.pipeline.queries.list_tickets()) == 2


async def test_customer_reply_reopens_a_resolved_ticket_and_agents_hear(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado resuelto")
    await customer_writes(gateway, "Re: [#TK-000001] factura", "Sigue fallando.")
    assert (await ticket(gateway))["status"] == "open"
    assert "reabrió" in text_of(last_to(relay, AGENTS))


async def test_requester_may_raise_priority_and_close_their_ticket(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER).message["Message-ID"]  # commands need a reply to our mail
    await customer_writes(gateway, "Re: [#TK-000001] factura", "#prioridad baja\n\nYa no es tan urgente.",
                          **{"In-Reply-To": acknowledgement})  # fmt: skip
    assert (await ticket(gateway))["priority"] == "low"
    await customer_writes(gateway, "Re: [#TK-000001] factura", "#cerrar\nListo, gracias.",
                          References=f"<x@empresa.example> {acknowledgement}")  # fmt: skip
    tk = await ticket(gateway)
    assert tk["status"] == "closed"
    assert tk["messages"][-1]["body"] == "Listo, gracias."
    confirmation = last_to(relay, REQUESTER)  # the requester hears of the change they made
    assert "confirmación" in confirmation.message["Subject"] and "Cerrado" in text_of(confirmation)


async def test_a_rating_counts_once_per_resolution_and_a_forged_one_not_at_all(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado resuelto")
    forged = rating_address(last_to(relay, REQUESTER), "No").replace(".no.", ".yes.")  # signed for "no"
    await customer_writes(gateway, "[#TK-000001] Sí me ayudó", "", to=forged)
    tk = await ticket(gateway)
    assert tk["rating"] is None and tk["status"] == "resolved"  # kept for agents, changes nothing
    assert tk["messages"][-1]["visibility"] == "internal" and "does not verify" in tk["messages"][-1]["note"]

    not_helpful = rating_address(last_to(relay, REQUESTER), "No")
    await customer_writes(gateway, "[#TK-000001] No me ayudó", "Sigue lento.", to=not_helpful)
    await customer_writes(gateway, "[#TK-000001] No me ayudó", "Otra vez.", to=not_helpful)  # reused
    tk = await ticket(gateway)
    assert tk["rating"]["helpful"] is False and tk["rating"]["comment"] == "Sigue lento."
    assert tk["status"] == "resolved"  # a rating never reopens
    assert tk["messages"][-1]["note"].startswith("rating ignored")


async def test_incident_cc_and_assignment_commands(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(
        gateway, notice,
        "#incidencia incidencia en progreso\n#cc +ana@distribuidora-andes.example -jnunez@distribuidora-andes.example"
        "\n#asignar ana@vendor.example\n#pais Chile",
    )  # fmt: skip
    tk = await ticket(gateway)
    assert tk["incident"] == "Incidencia en progreso"
    assert tk["cc"] == ["ana@distribuidora-andes.example"]
    assert (tk["assignee"], tk["country"]) == ("ana@vendor.example", "Chile")


async def test_export_csv_with_filters(gateway: Gateway, relay: Sink, config_path: Path) -> None:
    await opened(gateway, relay)
    await send(gateway, sample("15-forward-rfc822.eml"))
    await gateway.drain()
    result = run_cli(config_path, "tickets", "export", "--format", "csv", "--priority", "urgent")
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode())))
    assert [row["number"] for row in rows] == ["TK-000001"]
    assert rows[0]["fiscal_id"] == "76.086.428-5" and rows[0]["company"] == "Distribuidora Andes SpA"
    by_fiscal = run_cli(config_path, "tickets", "list", "--fiscal-id", "20100070970", "--json")
    assert b"TK-000002" in by_fiscal.stdout and b"TK-000001" not in by_fiscal.stdout
