"""Ticket domain rules, pure: tokens, priorities, who is copied."""

from __future__ import annotations

import pytest

from gateway.parse import parse_mail
from gateway.tickets import Priority, copied_people, format_number, priority_from_headers, ticket_numbers_in
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
