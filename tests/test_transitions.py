"""Ticket status transitions as tables: every status x every actor x every event.

The tables are written out by hand, not derived from gateway/rules/lifecycle.py: they are the
specification the pure rules (lifecycle, commands) are held to. A row reads

    status   actor   event   →   next status   news the customer gets

"·" for "no change" / "no news"; "follow-up" where the rule refuses the change because a
closed ticket never reopens (a reply to it opens a new, linked ticket).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.model import Status
from gateway.rules.commands import parse_commands
from gateway.rules.lifecycle import (
    DEFAULT_CUSTOMER_REPLY_MOVES,
    Moves,
    News,
    TransitionError,
    after_agent_reply,
    after_customer_reply,
    auto_close_due,
    change,
    customers_are_told,
    move_problems,
    status_news,
)
from gateway.settings import Settings, load_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RESOLVED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FOLLOW_UP = "follow-up"

# The default desk ([tickets] as config.example.toml leaves it): an agent's public reply moves
# an active ticket to waiting_customer; a customer's reopens a waiting or resolved one.
DEFAULT_DESK = """
open              customer  reply                   ·                 ·
in_progress       customer  reply                   ·                 ·
waiting_customer  customer  reply                   open              ·
resolved          customer  reply                   open              reopened
closed            customer  reply                   follow-up         ·
open              customer  #cerrar                 closed            closed
in_progress       customer  #cerrar                 closed            closed
waiting_customer  customer  #cerrar                 closed            closed
resolved          customer  #cerrar                 closed            closed
closed            customer  #cerrar                 ·                 ·
open              customer  #resuelto               resolved          resolved
in_progress       customer  #resuelto               resolved          resolved
waiting_customer  customer  #resuelto               resolved          resolved
resolved          customer  #resuelto               ·                 ·
closed            customer  #resuelto               follow-up         ·
open              customer  #estado_cerrado         ·                 ·
waiting_customer  customer  #estado_cerrado         open              ·
resolved          customer  #estado_en_progreso     open              reopened
open              agent     reply                   waiting_customer  ·
in_progress       agent     reply                   waiting_customer  ·
waiting_customer  agent     reply                   ·                 ·
resolved          agent     reply                   ·                 ·
closed            agent     reply                   ·                 ·
open              agent     #estado_abierto         ·                 ·
in_progress       agent     #estado_abierto         open              ·
waiting_customer  agent     #estado_abierto         open              ·
resolved          agent     #estado_abierto         open              reopened
closed            agent     #estado_abierto         follow-up         ·
open              agent     #estado_en_progreso     in_progress       ·
in_progress       agent     #estado_en_progreso     ·                 ·
waiting_customer  agent     #estado_en_progreso     in_progress       ·
resolved          agent     #estado_en_progreso     in_progress       reopened
closed            agent     #estado_en_progreso     follow-up         ·
open              agent     #estado_esperando       waiting_customer  waiting
in_progress       agent     #estado_esperando       waiting_customer  waiting
waiting_customer  agent     #estado_esperando       ·                 ·
resolved          agent     #estado_esperando       waiting_customer  waiting
closed            agent     #estado_esperando       follow-up         ·
open              agent     #estado_resuelto        resolved          resolved
in_progress       agent     #estado_resuelto        resolved          resolved
waiting_customer  agent     #estado_resuelto        resolved          resolved
resolved          agent     #estado_resuelto        ·                 ·
closed            agent     #estado_resuelto        follow-up         ·
open              agent     #estado_cerrado         closed            closed
in_progress       agent     #estado_cerrado         closed            closed
waiting_customer  agent     #estado_cerrado         closed            closed
resolved          agent     #estado_cerrado         closed            closed
closed            agent     #estado_cerrado         ·                 ·
open              system    auto-close_due          ·                 ·
in_progress       system    auto-close_due          ·                 ·
waiting_customer  system    auto-close_due          ·                 ·
resolved          system    auto-close_due          closed            closed
closed            system    auto-close_due          ·                 ·
resolved          system    auto-close_early        ·                 ·
"""


def rows(table: str) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in table.strip().splitlines()]


def command_status(text: str, *, agent: bool) -> Status | None:
    """The status a mail's command lines ask for; None: no status command (the mail is text)."""
    wanted = parse_commands(text, agent=agent).changes.get("status")
    return None if wanted is None else Status(wanted)


def next_status(
    current: Status, actor: str, event: str, customer_moves: Moves, agent_moves: Moves, hours: float
) -> Status | None:
    """Drive the pure rules as the desk does for one event; TransitionError when refused."""
    if actor == "system":
        now = RESOLVED_AT + timedelta(hours=hours if event == "auto-close_due" else hours - 1)
        return Status.CLOSED if auto_close_due(current, RESOLVED_AT, now, hours) else None
    if event.startswith("#"):
        wanted = command_status(event.replace("_", " "), agent=actor == "agent")
        if wanted is not None:  # an explicit change wins over the reply's move
            return change(current, wanted)
    if actor == "customer":
        return after_customer_reply(current, customer_moves)
    return after_agent_reply(current, None, agent_moves)


def outcome(current: Status, actor: str, event: str, customer: Moves, agent: Moves, hours: float) -> tuple[str, str]:
    try:
        new = next_status(current, actor, event, customer, agent, hours)
    except TransitionError:
        return FOLLOW_UP, "·"
    if new is None:
        return "·", "·"
    news = status_news(current, new, replied=actor == "agent" and event == "reply")
    return str(new), "·" if news is None else str(news)


@pytest.mark.parametrize(("status", "actor", "event", "expected", "news"), rows(DEFAULT_DESK))
def test_default_desk(status: str, actor: str, event: str, expected: str, news: str) -> None:
    agent_moves = {Status.OPEN: Status.WAITING_CUSTOMER, Status.IN_PROGRESS: Status.WAITING_CUSTOMER}
    assert outcome(Status(status), actor, event, DEFAULT_CUSTOMER_REPLY_MOVES, agent_moves, 48) == (expected, news)


def test_the_default_table_covers_every_status_actor_and_event() -> None:
    table = rows(DEFAULT_DESK)
    for actor, events in {
        "customer": ("reply", "#cerrar", "#resuelto"),
        "agent": ("reply", *(f"#estado_{w}" for w in ("abierto", "en_progreso", "esperando", "resuelto", "cerrado"))),
        "system": ("auto-close_due",),
    }.items():
        for event in events:
            assert sorted(row[0] for row in table if row[1:3] == (actor, event)) == sorted(Status), (actor, event)


def test_the_default_agent_reply_is_the_configured_status() -> None:
    """`[tickets] agent_reply_status` (no table): each active status moves to it."""
    assert after_agent_reply(Status.OPEN, Status.WAITING_CUSTOMER) is Status.WAITING_CUSTOMER
    assert after_agent_reply(Status.IN_PROGRESS, Status.WAITING_CUSTOMER) is Status.WAITING_CUSTOMER
    assert after_agent_reply(Status.OPEN, Status.IN_PROGRESS) is Status.IN_PROGRESS
    assert after_agent_reply(Status.IN_PROGRESS, Status.IN_PROGRESS) is None
    assert after_agent_reply(Status.RESOLVED, Status.WAITING_CUSTOMER) is None
    assert after_agent_reply(Status.OPEN, None) is None  # agent_reply_status = "": a reply moves nothing


# Each example desk's configured moves, written out: status → after a customer's reply,
# after an agent's reply; then whether customers hear of the auto-close at `hours`.
EXAMPLE_DESKS = {
    "estela.toml": """
        open              ·                 waiting_customer
        in_progress       ·                 waiting_customer
        waiting_customer  open              ·
        resolved          open              ·
        closed            follow-up         ·
    """,
    "enviado.toml": """
        open              ·                 waiting_customer
        in_progress       ·                 waiting_customer
        waiting_customer  in_progress       ·
        resolved          in_progress       ·
        closed            follow-up         ·
    """,
    "simple.toml": """
        open              ·                 in_progress
        in_progress       ·                 ·
        waiting_customer  in_progress       ·
        resolved          open              ·
        closed            follow-up         ·
    """,
}
# hours after resolution a ticket closes by itself; whether customers are told of it (a desk
# whose "resolved" and "closed" read alike tells them once, at resolution).
AUTO_CLOSE = {"estela.toml": (48, True), "enviado.toml": (72, True), "simple.toml": (24, False)}


def example(name: str) -> Settings:
    return load_settings(EXAMPLES / name)


@pytest.mark.parametrize("name", sorted(EXAMPLE_DESKS))
def test_example_desk_moves(name: str) -> None:
    tickets = example(name).tickets
    for status, after_customer, after_agent in rows(EXAMPLE_DESKS[name]):
        got_customer, _ = outcome(Status(status), "customer", "reply", tickets.customer_reply_moves, {}, 48)
        got_agent, _ = outcome(Status(status), "agent", "reply", {}, tickets.agent_moves, 48)
        assert (status, got_customer, got_agent) == (status, after_customer, after_agent)


@pytest.mark.parametrize("name", sorted(AUTO_CLOSE))
def test_example_desk_auto_close(name: str) -> None:
    settings = example(name)
    hours, told = AUTO_CLOSE[name]
    assert settings.tickets.auto_close_hours == hours
    assert not auto_close_due(Status.RESOLVED, RESOLVED_AT, RESOLVED_AT + timedelta(hours=hours - 1), hours)
    assert auto_close_due(Status.RESOLVED, RESOLVED_AT, RESOLVED_AT + timedelta(hours=hours), hours)
    language = settings.mailboxes[0].language
    reads = lambda status: settings.label(status, language)  # noqa: E731
    assert customers_are_told(Status.RESOLVED, Status.CLOSED, reads) is told
    assert customers_are_told(Status.OPEN, Status.RESOLVED, reads) is True


@pytest.mark.parametrize(
    ("moves", "problem"),
    [
        ({Status.CLOSED: Status.OPEN}, "closed → open: a reply never moves a ticket out of closed"),
        ({Status.RESOLVED: Status.CLOSED}, "resolved → closed: a reply never moves a ticket to closed"),
    ],
)
def test_a_reply_never_moves_a_ticket_into_or_out_of_closed(moves: Moves, problem: str) -> None:
    assert move_problems(moves) == [problem]


def test_news_words_are_the_four_a_customer_can_get() -> None:
    assert {str(news) for news in News} == {"reopened", "waiting", "resolved", "closed"}
