"""Fields people search by, as customers write them, found by the CLI as agents type them;
and "Mis tickets" for everyone on a ticket. Through the listener, the sink and `run_cli`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, Sink, make_mail, run_cli, send
from tests.support.desk import AGENTS, agent_answers, last_to, text_of


async def writes(gateway: Gateway, sender: str, subject: str, body: str, cc: str | None = None) -> None:
    await send(gateway, make_mail(subject, body=body, sender=sender, to=MAILBOX, cc=cc), [MAILBOX])
    await gateway.drain()


def listed(config: Path, *filters: str) -> list[dict[str, object]]:
    result = run_cli(config, "tickets", "list", "--json", *filters)
    assert result.returncode == 0, result.stderr.decode()
    tickets: list[dict[str, object]] = json.loads(result.stdout)
    return tickets


@pytest.mark.slow
async def test_fiscal_id_is_found_by_any_written_form(gateway: Gateway, config_path: Path) -> None:
    await writes(gateway, "a@cliente.example", "Factura", "RUT: 76086428-5")
    await writes(gateway, "b@cliente.example", "Factura", "NIT: 900.123.456-8")
    await writes(gateway, "c@cliente.example", "Factura", "RFC: GODE-561231-GR8")
    await writes(gateway, "d@cliente.example", "Factura", "Les reenvío el caso. RUC: 20100070970.")
    searches = {"76.086.428-5": "a", "760864285": "a", "900123456-8": "b", "900.123.456-8": "b",
                "gode561231gr8": "c", "GODE-561231-GR8": "c", "20100070970": "d"}  # fmt: skip
    for written, who in searches.items():
        [found] = listed(config_path, "--fiscal-id", written)
        assert found["requester"] == f"{who}@cliente.example", written
    [ruc] = listed(config_path, "--fiscal-id", "20100070970")
    assert (ruc["fiscal_id"], ruc["fiscal_id_valid"]) == ("20100070970", True)  # the sentence's "." is not the id's


async def test_country_names_and_codes_are_stored_as_iso_codes(gateway: Gateway, config_path: Path) -> None:
    for sender, written in (("a", "Perú"), ("b", "Peru"), ("c", "PE"), ("d", "México"), ("e", "Chile")):
        await writes(gateway, f"{sender}@cliente.example", "Consulta", f"Hola\nPaís: {written}\nGracias")
    assert [t["requester"] for t in listed(config_path, "--country", "PE")] == [
        "a@cliente.example", "b@cliente.example", "c@cliente.example",
    ]  # fmt: skip
    assert [t["country"] for t in listed(config_path, "--country", "México")] == ["MX"]
    assert len(listed(config_path, "--country", "cl")) == 1


async def test_a_help_centre_form_gives_title_and_reason(gateway: Gateway, config_path: Path) -> None:
    form = "Título: No puedo emitir boletas\nMotivo: Problema técnico\nRUT: 76.086.428-5\nDetalle: sale un error"
    await writes(gateway, "a@cliente.example", "Formulario de contacto", form)
    await writes(gateway, "b@cliente.example", "Error al timbrar", "Título: otra cosa\nMotivo: Consulta")
    first, second = listed(config_path)
    assert (first["subject"], first["type"]) == ("No puedo emitir boletas", "incident")
    assert (second["subject"], second["type"]) == ("Error al timbrar", "question")  # a real subject stays


async def test_a_bad_date_filter_names_the_format(gateway: Gateway, config_path: Path) -> None:
    await writes(gateway, "a@cliente.example", "Factura", "Hola")
    result = run_cli(config_path, "tickets", "list", "--created-from", "30/11/2026")
    assert result.returncode == 2
    assert b"YYYY-MM-DD" in result.stderr and b"Traceback" not in result.stderr


async def test_my_tickets_for_a_copied_colleague_and_open_only(gateway: Gateway, relay: Sink) -> None:
    requester, colleague = "maria@cliente.example", "pedro@cliente.example"
    await writes(gateway, requester, "No imprime", "Hola", cc=colleague)
    await writes(gateway, requester, "No abre la caja", "Hola", cc=colleague)
    await writes(gateway, requester, "Sin copia", "Hola")
    await agent_answers(gateway, relay.handler.to(AGENTS)[0], "#estado resuelto", sender="csoto@estela.example")

    await writes(gateway, colleague, "Mis tickets", "")
    everything = text_of(last_to(relay, colleague))
    assert "TK-000001" in everything and "TK-000002" in everything and "TK-000003" not in everything

    for subject in ("Mis tickets abiertos", "RE: my open tickets", "Meus tickets abertos"):
        await writes(gateway, colleague, subject, "")
        only_open = text_of(last_to(relay, colleague))
        assert "TK-000002" in only_open and "TK-000001" not in only_open, subject
    await writes(gateway, requester, "Mis tickets abiertos", "")
    mine = text_of(last_to(relay, requester))
    assert "TK-000002" in mine and "TK-000003" in mine and "TK-000001" not in mine
    assert len(await gateway.pipeline.queries.list_tickets()) == 3  # none was opened by asking
