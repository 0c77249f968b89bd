"""What customers read, decided in pure code: dates, greetings, status news, who already has
a mail, and a follow-up's subject and context."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.model import Address, Status
from gateway.outbound.wording import day, greeting_name, when
from gateway.rules.lifecycle import News, incident_news, status_news
from gateway.rules.recipients import Event, People, plan
from gateway.rules.subjects import follow_up_subject
from gateway.settings import MailboxSettings

SANTIAGO = ZoneInfo("America/Santiago")
S = Status


@pytest.mark.parametrize(
    ("value", "language", "zone", "expected"),
    [
        ("2026-11-30T13:25:46.000+00:00", "es", SANTIAGO, "lun. 30 nov. 2026, 10:25"),  # summer: UTC-3
        ("2026-07-01T13:25:00.000+00:00", "es", SANTIAGO, "mié. 1 jul. 2026, 09:25"),  # winter: UTC-4
        ("2026-09-07T02:05:00+00:00", "es", SANTIAGO, "dom. 6 sept. 2026, 23:05"),  # the day before (DST began)
        ("2026-11-30T13:25:46.000+00:00", "en", UTC, "Mon, 30 Nov 2026, 13:25"),
        ("2026-11-30T13:25:46.000+00:00", "pt", ZoneInfo("America/Sao_Paulo"), "seg., 30 de nov. de 2026, 10:25"),
        ("2026-11-30T13:25:46", "es", UTC, "lun. 30 nov. 2026, 13:25"),  # naive: stored times are UTC
        (datetime(2026, 11, 30, 13, 25, tzinfo=UTC), "es", UTC, "lun. 30 nov. 2026, 13:25"),
        ("no es una fecha", "es", UTC, "no es una fecha"),
        (None, "es", UTC, ""),
    ],
)
def test_when(value: str | datetime | None, language: str, zone: ZoneInfo, expected: str) -> None:
    assert when(value, language, zone) == expected


def test_day_is_the_local_date() -> None:
    assert day("2026-12-01T02:00:00+00:00", "es", SANTIAGO) == "30 nov. 2026"
    assert day("2026-12-01T02:00:00+00:00", "pt", UTC) == "1 de dez. de 2026"


def test_a_mailbox_zone_must_exist() -> None:
    assert MailboxSettings(address="a@b.example").timezone == "UTC"
    assert MailboxSettings(address="a@b.example", timezone="America/Santiago").zone.key == "America/Santiago"
    with pytest.raises(ValueError, match="not a time zone"):
        MailboxSettings(address="a@b.example", timezone="America/Springfield")


@pytest.mark.parametrize(
    ("name", "address", "expected"),
    [
        ("Ibáñez, Íñigo", "iibanez@x.example", "Íñigo"),  # Outlook / Exchange directory form
        ("Pérez, María José", "mj@x.example", "María José"),
        ("María José Pérez", "mj@x.example", "María José Pérez"),
        ('"Ibáñez, Íñigo (Distribuidora Andes)"', "i@x.example", "Íñigo"),
        ("IBÁÑEZ, ÍÑIGO", "i@x.example", "Íñigo"),
        ("Jorge Núñez - Ventas", "j@x.example", "Jorge Núñez"),
        ("", "bare@x.example", ""),
        ("bare@x.example", "bare@x.example", ""),
        ("'otra@x.example'", "bare@x.example", ""),
        ("Pérez,", "p@x.example", "Pérez"),
    ],
)
def test_greeting_name(name: str, address: str, expected: str) -> None:
    assert greeting_name(Address(name, address)) == expected


@pytest.mark.parametrize(
    ("old", "new", "replied", "news"),
    [
        (S.OPEN, S.WAITING_CUSTOMER, False, News.WAITING),  # a command alone: ask the customer
        (S.OPEN, S.WAITING_CUSTOMER, True, None),  # the reply itself asks
        (S.RESOLVED, S.WAITING_CUSTOMER, False, News.WAITING),  # never "reopened"
        (S.RESOLVED, S.OPEN, False, News.REOPENED),
        (S.RESOLVED, S.IN_PROGRESS, True, News.REOPENED),
        (S.OPEN, S.RESOLVED, True, News.RESOLVED),
        (S.RESOLVED, S.CLOSED, False, News.CLOSED),
        (S.WAITING_CUSTOMER, S.OPEN, False, None),  # the customer answered: they know
        (S.OPEN, S.IN_PROGRESS, False, None),
        (S.OPEN, S.OPEN, False, None),
    ],
)
def test_status_news(old: S, new: S, replied: bool, news: News | None) -> None:
    assert status_news(old, new, replied=replied) is news


@pytest.mark.parametrize(
    ("old", "new", "told"),
    [(None, "Esperando creación", "Esperando creación"), ("Esperando creación", "Incidencia en progreso",
     "Incidencia en progreso"), ("Incidencia en progreso", "Incidencia en progreso", None), ("x", None, None)],
)  # fmt: skip
def test_incident_news(old: str | None, new: str | None, told: str | None) -> None:
    assert incident_news(old, new) == told


REQUESTER = Address("María", "maria@cliente.example")
JORGE = Address("Jorge", "jorge@cliente.example")
ANA = Address("Ana", "ana@cliente.example")
AGENT = Address("Carla", "carla@estela.example")
AGENTS = Address("", "agentes@estela.example")


def people(author: Address, addressed: frozenset[str]) -> People:
    return People(author, REQUESTER, (JORGE, ANA), (AGENTS,), frozenset({"soporte@estela.example"}),
                  addressed=addressed)  # fmt: skip


@pytest.mark.parametrize(
    ("event", "author", "addressed", "expected"),
    [
        # The customer wrote to us and Jorge: Jorge read it there; Ana still gets a copy.
        (Event.CUSTOMER_REPLY, REQUESTER, {"jorge@cliente.example"},
         [("customer_reply", ["agentes@estela.example"], []), ("customer_reply", ["ana@cliente.example"], [])]),
        # The agent copied the customer directly: only the colleagues hear from us.
        (Event.AGENT_REPLY, AGENT, {"maria@cliente.example"},
         [("agent_reply", ["jorge@cliente.example"], ["ana@cliente.example"])]),
        (Event.AGENT_REPLY, AGENT, {"maria@cliente.example", "jorge@cliente.example", "ana@cliente.example"}, []),
        # Our own words are news to everybody: acknowledgements and status mail go to all.
        (Event.TICKET_CREATED, REQUESTER, {"jorge@cliente.example"},
         [("acknowledgement", ["maria@cliente.example"], ["jorge@cliente.example", "ana@cliente.example"]),
          ("agent_new_ticket", ["agentes@estela.example"], [])]),
        (Event.STATUS_CHANGED, AGENT, {"maria@cliente.example"},
         [("status_changed", ["maria@cliente.example"], ["jorge@cliente.example", "ana@cliente.example"])]),
    ],
)  # fmt: skip
def test_nobody_gets_the_same_words_twice(
    event: Event, author: Address, addressed: set[str], expected: list[tuple[str, list[str], list[str]]]
) -> None:
    planned = plan(event, people(author, frozenset(addressed)), copy_participants=True)
    assert [(m.template, [p.address for p in m.to], [p.address for p in m.cc]) for m in planned] == expected


@pytest.mark.parametrize(
    ("subject", "previous", "expected"),
    [
        ("RE: [#TK-000001] Error en factura · Cerrado", "Error en factura", "Error en factura"),
        ("RE: [#TK-000001] Error en factura · Resuelto", "Error en factura", "Error en factura"),
        ("Re: [#TK-000001] error en factura", "Error en factura", "Error en factura"),
        ("RE: [#TK-000001] Error en factura 4513", "Error en factura", "Error en factura 4513"),  # a new subject
        ("RE: [#TK-000001]", "Error en factura", "Error en factura"),
        ("RE: RV: [#TK-000001] Factura rechazada", "", "Factura rechazada"),
    ],
)
def test_follow_up_subject(subject: str, previous: str, expected: str) -> None:
    assert follow_up_subject(subject, "TK", previous) == expected
