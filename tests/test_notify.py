"""Who hears of what: the notification table, without I/O."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.model import Address
from gateway.rules.recipients import (
    AUTO_GENERATED,
    AUTO_REPLIED,
    MUTED_NOTICE,
    Event,
    MailLimits,
    People,
    PlannedMail,
    RecentMail,
    allow,
    cap_recipients,
    keep_only,
    plan,
    tally,
)

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


ANSWERING_THE_AUTHOR = {
    Event.TICKET_CREATED, Event.COMMANDS_REJECTED, Event.MY_TICKETS, Event.COMMANDS_CONFIRMED, Event.AGENT_UNVERIFIED,
    Event.OPEN_REFUSED,
}  # fmt: skip


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


def test_a_customer_command_is_confirmed_to_the_requester_who_wrote_it() -> None:
    [mail] = plan(Event.COMMANDS_CONFIRMED, people(REQUESTER.address), copy_participants=True)
    assert [p.address for p in mail.to] == [REQUESTER.address] and mail.cc == ()


@pytest.mark.parametrize(
    "ours", ["soporte.latam+rate.tk-000001.2.yes.0000000000000000@estela.example", "Soporte.Latam+x@Estela.Example"]
)
def test_our_mailboxes_in_any_plus_form_are_never_recipients(ours: str) -> None:
    for event in Event:
        for mail in plan(event, people(cc=(Address("", ours), CC_ONE)), copy_participants=True):
            assert ours not in {p.address for p in (*mail.to, *mail.cc)}


@pytest.mark.parametrize(
    ("to", "cc", "limit", "kept_to", "kept_cc", "left_out"),
    [
        (1, 2, 20, 1, 2, 0),
        (1, 2000, 20, 1, 19, 1981),
        (0, 30, 20, 0, 20, 10),
        (25, 5, 20, 20, 0, 10),
    ],
)  # fmt: skip
def test_cap_recipients(to: int, cc: int, limit: int, kept_to: int, kept_cc: int, left_out: int) -> None:
    def many(prefix: str, count: int) -> tuple[Address, ...]:
        return tuple(Address("", f"{prefix}{index}@cliente.example") for index in range(count))

    capped, dropped = cap_recipients(PlannedMail("acknowledgement", many("to", to), many("cc", cc), "", False), limit)
    assert (len(capped.to), len(capped.cc), len(dropped)) == (kept_to, kept_cc, left_out)
    assert {p.address for p in (*capped.to, *capped.cc)}.isdisjoint(dropped)


def test_without_an_agents_address_agents_get_nothing() -> None:
    planned = plan(Event.TICKET_CREATED, people(agents=()), copy_participants=True)
    assert [mail.template for mail in planned] == ["acknowledgement"]


@pytest.mark.parametrize("event", [Event.COMMANDS_REJECTED, Event.MY_TICKETS])
def test_answers_to_one_person_go_to_that_person_only(event: Event) -> None:
    [mail] = plan(event, people("csoto@estela.example"), copy_participants=True)
    assert [p.address for p in mail.to] == ["csoto@estela.example"] and mail.cc == ()


# -- bounds on automatic mail: at most 3 to one address, 6 about the ticket, 2 notices an hour
LIMITS = MailLimits(per_recipient=3, per_ticket=6, notices=2)
BOT, OTHER = "bot@cliente.example", "otro@cliente.example"


@pytest.mark.parametrize(
    ("recipients", "recent", "kept", "muted", "newly", "tell"),
    [
        ([BOT, OTHER], RecentMail(), [BOT, OTHER], [], [], False),
        ([BOT], RecentMail(Counter({BOT: 2}), mails=2), [BOT], [], [], False),
        # the mail over the bound: silence for that address, agents told
        ([BOT, OTHER], RecentMail(Counter({BOT: 3}), mails=3), [OTHER], [BOT], [BOT], True),
        # addresses compare without case
        (["Bot@Cliente.Example"], RecentMail(Counter({BOT: 3}), mails=3), [], [BOT], [BOT], True),
        # already told within the hour: muted, and agents are not told again
        ([BOT], RecentMail(Counter({BOT: 3}), mails=3, muted=frozenset({BOT})), [], [BOT], [], False),
        # the ticket's own bound mutes everybody, however little each one got
        ([BOT, OTHER], RecentMail(Counter({AGENTS.address: 6}), mails=6), [], [BOT, OTHER], [BOT, OTHER], True),
        # notices are bounded too: past them the address is muted (and recorded), agents not told
        ([BOT], RecentMail(Counter({BOT: 3}), mails=3, notices=2), [], [BOT], [BOT], False),
        ([BOT, BOT], RecentMail(), [BOT], [], [], False),
    ],
)  # fmt: skip
def test_allow(recipients: list[str], recent: RecentMail, kept: list[str], muted: list[str], newly: list[str],
               tell: bool) -> None:  # fmt: skip
    allowance = allow(recipients, recent, LIMITS)
    assert (list(allowance.kept), list(allowance.muted)) == (kept, muted)
    assert (list(allowance.newly_muted), allowance.tell_agents) == (newly, tell)


def test_tally_counts_mails_per_recipient_and_notices() -> None:
    sent = [(1, "acknowledgement", BOT), (1, "acknowledgement", OTHER), (2, "customer_reply", "BOT@cliente.example"),
            (3, MUTED_NOTICE, AGENTS.address)]  # fmt: skip
    assert tally(sent) == (Counter({BOT: 2, OTHER: 1, AGENTS.address: 1}), 3, 1)


def test_mail_queued_within_one_event_is_counted_as_a_second_read_would_count_it() -> None:
    # notify reads the window once and adds each mail it queues (notifications.py).
    first = [(1, "acknowledgement", BOT), (1, "acknowledgement", OTHER)]
    queued = [("customer_reply", ["BOT@cliente.example"]), (MUTED_NOTICE, [AGENTS.address])]
    recent = RecentMail(*tally(first), muted=frozenset({OTHER}))
    for template, recipients in queued:
        recent = recent.with_mail(template, recipients)
    reread = [*first, *((n, template, r) for n, (template, rs) in enumerate(queued, 2) for r in rs)]
    assert recent == RecentMail(*tally(reread), muted=frozenset({OTHER}))
    assert recent.told([BOT]).muted == {OTHER, BOT}


@pytest.mark.parametrize(
    ("kept", "to", "cc"),
    [
        ([REQUESTER.address, CC_ONE.address], [REQUESTER.address], [CC_ONE.address]),
        ([CC_ONE.address], [CC_ONE.address], []),  # the requester muted: the CC becomes the addressee
        ([], None, None),
    ],
)  # fmt: skip
def test_keep_only_drops_muted_recipients(kept: list[str], to: list[str] | None, cc: list[str] | None) -> None:
    mail = PlannedMail("customer_reply", (REQUESTER,), (CC_ONE,), AUTO_GENERATED, False)
    bounded = keep_only(mail, kept)
    got = None if bounded is None else [p.address for p in bounded.to]
    assert got == to
    assert cc is None or [p.address for p in bounded.cc] == cc  # type: ignore[union-attr]
