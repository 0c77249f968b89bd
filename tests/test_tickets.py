"""Ticket domain rules, pure: tokens, priorities, who is copied."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.model import Address, Priority
from gateway.parsing.mail import parse_mail
from gateway.rules.subject_token import format_number, number_format_sql, ticket_numbers_in
from gateway.rules.tickets import cap_newcomers, copied_people, priority_from_headers
from tests.conftest import make_mail


@pytest.mark.parametrize(
    ("subject", "numbers"),
    [
        ("[#TK-000123] Factura", ["TK-000123"]),
        ("RE: RE: [#TK-000123] Factura", ["TK-000123"]),
        ("RV: tk-123 Factura", ["TK-000123"]),
        ("Fwd: #TK-42", ["TK-000042"]),
        ("Re:[TK-000001][TK-000002]", ["TK-000001", "TK-000002"]),
        ("ATK-000001 no es token", []),
        ("TK-0000012345678901234", []),
        ("Sin token", []),
        ("TK-1000000 crece", ["TK-1000000"]),
    ],
)
def test_ticket_numbers_in_subject(subject: str, numbers: list[str]) -> None:
    assert ticket_numbers_in(subject, "TK") == numbers


def test_prefix_is_escaped_not_a_pattern() -> None:
    assert ticket_numbers_in("[#SOP-000009] hola", "SOP") == ["SOP-000009"]
    assert ticket_numbers_in("[#TK-000009] hola", "SOP") == []


def test_numbers_are_zero_padded() -> None:
    assert format_number("TK", 7) == "TK-000007"


@pytest.mark.parametrize(
    ("headers", "default", "expected"),
    [
        ({}, Priority.MEDIUM, Priority.MEDIUM),
        ({"Importance": "high"}, Priority.MEDIUM, Priority.HIGH),
        ({"Importance": "High"}, Priority.LOW, Priority.HIGH),
        ({"X-Priority": "1 (Highest)"}, Priority.MEDIUM, Priority.HIGH),
        ({"X-Priority": "2"}, Priority.MEDIUM, Priority.HIGH),
        ({"X-Priority": "3 (Normal)"}, Priority.MEDIUM, Priority.MEDIUM),
        ({"Importance": "low"}, Priority.MEDIUM, Priority.MEDIUM),
        ({"Importance": "high"}, Priority.URGENT, Priority.URGENT),
    ],
)
def test_priority_from_headers(headers: dict[str, str], default: Priority, expected: Priority) -> None:
    mail = parse_mail(make_mail("x", extra_headers=headers))
    assert priority_from_headers(mail, default) is expected


def test_copied_people_are_cc_and_foreign_to_addresses_without_us_or_the_author() -> None:
    mail = parse_mail(
        make_mail(
            "x",
            sender="ana@cliente.example",
            to="soporte.latam@estela.example, Beto <beto@cliente.example>",
            cc="ana@cliente.example, Carla <carla@cliente.example>, beto@cliente.example",
        )
    )
    people = copied_people(mail, frozenset({"soporte.latam@estela.example"}), exclude="ana@cliente.example")
    assert [person.address for person in people] == ["beto@cliente.example", "carla@cliente.example"]


@pytest.mark.parametrize(
    "ours",
    [
        "soporte.latam+rate.TK-000001.2.yes.0000000000000000@estela.example",
        "Soporte.Latam+TK-000001.0123456789abcdef@ESTELA.example",
        "soporte.latam+anything@estela.example",
        "ventas+x@estela.example",
    ],
)
def test_no_plus_form_of_our_mailboxes_is_ever_copied(ours: str) -> None:
    mail = parse_mail(make_mail("x", to=f"soporte.latam@estela.example, {ours}", cc=f"{ours}, ana@cliente.example"))
    mailboxes = frozenset({"soporte.latam@estela.example", "ventas@estela.example"})
    people = copied_people(mail, mailboxes, exclude="cliente@empresa.example")
    assert [person.address for person in people] == ["ana@cliente.example"]


def test_one_mail_adds_at_most_the_cap_of_new_people_in_its_order() -> None:
    copied = tuple(Address("", f"p{index}@cliente.example") for index in range(15))
    newcomers = cap_newcomers(copied, frozenset({"p0@cliente.example", "p1@cliente.example"}), limit=10)
    assert [p.address for p in newcomers.added] == [f"p{index}@cliente.example" for index in range(2, 12)]
    assert [p.address for p in newcomers.left_out] == [f"p{index}@cliente.example" for index in range(12, 15)]


@pytest.mark.parametrize("sequence", [1, 7, 999_999, 1_000_000, 123_456_789])
@pytest.mark.parametrize("prefix", ["TK", "Soporte2"])
def test_a_number_spelled_by_sqlite_is_spelled_as_format_number_spells_it(prefix: str, sequence: int) -> None:
    # desk/store.py makes a new ticket's number inside its INSERT, from the counter.
    (spelled,) = (
        sqlite3.connect(":memory:").execute("SELECT printf(?, ?)", (number_format_sql(prefix), sequence)).fetchone()
    )
    assert spelled == format_number(prefix, sequence)
