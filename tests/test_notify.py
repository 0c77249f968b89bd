"""Who hears of what: the notification table, without I/O."""

from __future__ import annotations

import pytest

from gateway.notify import AUTO_GENERATED, AUTO_REPLIED, Event, People, plan
from gateway.parse import Address

REQUESTER = Address("María", "maria@cliente.example")
CC_ONE = Address("Jorge", "jorge@cliente.example")
CC_TWO = Address("Ana", "ana@cliente.example")
AGENTS = Address("", "agentes@estela.example")
OURS = frozenset({"soporte.latam@estela.example"})


def people(author: str = REQUESTER.address, **changes: object) -> People:
    base = {"author": Address("", author), "requester": REQUESTER, "cc": (CC_ONE, CC_TWO), "agents": (AGENTS,),
            "ours": OURS}  # fmt: skip
    return People(**{**base, **changes})  # type: ignore[arg-type]


def addresses(mails: list, field: str) -> list[list[str]]:
    return [[person.address for person in getattr(mail, field)] for mail in mails]


@pytest.mark.parametrize(
    ("event", "author", "copy", "expected"),
    [
        (
            Event.TICKET_CREATED, REQUESTER.address, True,
            [("acknowledgement", [REQUESTER.address], [CC_ONE.address, CC_TWO.address], AUTO_REPLIED),
             ("agent_new_ticket", [AGENTS.address], [], AUTO_GENERATED)],
        ),
        (
            Event.CUSTOMER_REPLY, REQUESTER.address, True,
            [("customer_reply", [AGENTS.address], [], AUTO_GENERATED),
             ("customer_reply", [CC_ONE.address], [CC_TWO.address], AUTO_GENERATED)],
        ),
        (
            Event.CUSTOMER_REPLY, CC_ONE.address, True,
            [("customer_reply", [AGENTS.address], [], AUTO_GENERATED),
             ("customer_reply", [REQUESTER.address], [CC_TWO.address], AUTO_GENERATED)],
        ),
        (Event.CUSTOMER_REPLY, REQUESTER.address, False, [("customer_reply", [AGENTS.address], [], AUTO_GENERATED)]),
        (
            Event.AGENT_REPLY, "csoto@estela.example", True,
            [("agent_reply", [REQUESTER.address], [CC_ONE.address, CC_TWO.address], AUTO_GENERATED)],
        ),
        (
            Event.STATUS_CHANGED, "csoto@estela.example", True,
            [("status_changed", [REQUESTER.address], [CC_ONE.address, CC_TWO.address], AUTO_GENERATED)],
        ),
    ],
)  # fmt: skip
def test_plan(event: Event, author: str, copy: bool, expected: list) -> None:
    planned = plan(event, people(author), copy_participants=copy)
    got = [
        (mail.template, to, cc, mail.auto_submitted)
        for mail, to, cc in zip(planned, addresses(planned, "to"), addresses(planned, "cc"), strict=True)
    ]
    assert got == expected


ANSWERING_THE_AUTHOR = {Event.TICKET_CREATED, Event.COMMANDS_REJECTED, Event.MY_TICKETS}


@pytest.mark.parametrize("event", [event for event in Event if event not in ANSWERING_THE_AUTHOR])
def test_nobody_gets_their_own_message_back(event: Event) -> None:
    for author in (REQUESTER.address, CC_ONE.address, AGENTS.address):
        for mail in plan(event, people(author), copy_participants=True):
            assert author not in [p.address for p in (*mail.to, *mail.cc)]


def test_the_author_of_a_new_ticket_gets_only_its_acknowledgement() -> None:
    planned = plan(Event.TICKET_CREATED, people(), copy_participants=True)
    to_requester = [mail.template for mail in planned if REQUESTER in (*mail.to, *mail.cc)]
    assert to_requester == ["acknowledgement"]


def test_our_own_mailboxes_and_bounced_addresses_are_never_recipients() -> None:
    looping = people(
        "csoto@estela.example",
        cc=(Address("", "soporte.latam@estela.example"), CC_ONE),
        unreachable=frozenset({CC_ONE.address}),
    )
    for event in Event:
        if event in ANSWERING_THE_AUTHOR:
            continue
        for mail in plan(event, looping, copy_participants=True):
            assert {p.address for p in (*mail.to, *mail.cc)} & {"soporte.latam@estela.example", CC_ONE.address} == set()


def test_without_an_agents_address_agents_get_nothing() -> None:
    planned = plan(Event.TICKET_CREATED, people(agents=()), copy_participants=True)
    assert [mail.template for mail in planned] == ["acknowledgement"]


@pytest.mark.parametrize("event", [Event.COMMANDS_REJECTED, Event.MY_TICKETS])
def test_answers_to_one_person_go_to_that_person_only(event: Event) -> None:
    [mail] = plan(event, people("csoto@estela.example"), copy_participants=True)
    assert [p.address for p in mail.to] == ["csoto@estela.example"] and mail.cc == ()
