"""The ticket lifecycle: one state machine, pure.

open → in_progress → waiting_customer → resolved → closed. What a customer's and an
agent's reply do to each status is a desk's own table (`Moves`, from `[tickets]
customer_reply_moves` / `agent_reply_moves`), passed in; by default a customer's reply
reopens a waiting or resolved ticket. A closed ticket never reopens (a reply to it starts a
new, linked ticket); a resolved ticket closes by itself `auto_close_hours` after resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from gateway.model import Status

ACTIVE = frozenset({Status.OPEN, Status.IN_PROGRESS})
REOPENED_BY_CUSTOMER = frozenset({Status.WAITING_CUSTOMER, Status.RESOLVED})
# The changes customers are told of: resolution, closing, a reopening, and that we wait for them.
TOLD_TO_CUSTOMERS = frozenset({Status.RESOLVED, Status.CLOSED})


# A desk's transition table: the status a reply moves a ticket from → to; absent: no move.
Moves: TypeAlias = Mapping[Status, Status]
DEFAULT_CUSTOMER_REPLY_MOVES: Moves = {status: Status.OPEN for status in REOPENED_BY_CUSTOMER}


class News(StrEnum):
    """What a status change means to a customer: each has its own words (status_changed)."""

    REOPENED = "reopened"  # a resolved ticket is being worked on again
    WAITING = "waiting"  # we need something from them to go on
    RESOLVED = "resolved"  # with the rating question
    CLOSED = "closed"  # a new mail opens a follow-up


class TransitionError(Exception):
    """A status change the lifecycle does not allow; the message says why."""


def after_customer_reply(current: Status, moves: Moves = DEFAULT_CUSTOMER_REPLY_MOVES) -> Status | None:
    """The status a customer's reply moves the ticket to, or None for no change."""
    if current is Status.CLOSED:
        raise TransitionError("a closed ticket never reopens; the reply starts a follow-up ticket")
    return _moved(current, moves)


def after_agent_reply(current: Status, configured: Status | None, moves: Moves | None = None) -> Status | None:
    """An agent's public reply: the desk's table when it has one, else an active ticket
    moves to the configured status."""
    if moves is not None:
        return _moved(current, moves)
    return agent_reply_moves(configured).get(current)


def agent_reply_moves(configured: Status | None) -> dict[Status, Status]:
    """The table `[tickets] agent_reply_status` stands for: each active status → it."""
    if configured is None:
        return {}
    return {status: configured for status in ACTIVE if status is not configured}


def move_problems(moves: Moves) -> list[str]:
    """Why a transition table cannot be used (empty: it can): a reply never moves a ticket
    out of or into `closed` (closing is explicit or by time; closed is final)."""
    return [
        f"{old} → {new}: a reply never moves a ticket {'out of' if old is Status.CLOSED else 'to'} closed"
        for old, new in moves.items()
        if Status.CLOSED in (old, new)
    ]


def _moved(current: Status, moves: Moves) -> Status | None:
    new = moves.get(current)
    return None if new is None or new is current else new


def change(current: Status, wanted: Status) -> Status | None:
    """An explicit change (a command); None when it changes nothing."""
    if current is Status.CLOSED and wanted is not Status.CLOSED:
        raise TransitionError("the ticket is closed and never reopens; write to open a new one")
    return None if wanted is current else wanted


def is_reopening(old: Status, new: Status) -> bool:
    """Back to work on a resolved ticket (waiting for the customer is not "reopened")."""
    return old is Status.RESOLVED and new in ACTIVE


def status_news(old: Status, new: Status, *, replied: bool = False) -> News | None:
    """What the customer is told of a status change, or None for nothing.

    `replied`: the same mail sent the customer support's public reply; that reply is what
    asks them for what is needed, so "waiting for your reply" adds no second mail."""
    if new is old:
        return None
    if new is Status.RESOLVED:
        return News.RESOLVED
    if new is Status.CLOSED:
        return News.CLOSED
    if new is Status.WAITING_CUSTOMER:
        return None if replied else News.WAITING
    return News.REOPENED if is_reopening(old, new) else None


def customers_are_told(old: Status, new: Status, reads: Callable[[Status], str] | None = None) -> bool:
    """Whether customers hear of a change; never when, as `reads` (the desk's labels) shows
    them, nothing changed: a desk whose "resolved" and "closed" both read "Cerrado" tells
    its customers once, at resolution, not again at auto-close."""
    if reads is not None and reads(old) == reads(new):
        return False
    return status_news(old, new) is not None


def incident_news(old: str | None, new: str | None) -> str | None:
    """The incident sub-status a customer is told of ("Incidencia en progreso"), if it changed."""
    return new if new and new != old else None


def auto_close_due(current: Status, resolved_at: datetime | None, now: datetime, hours: float) -> bool:
    return current is Status.RESOLVED and resolved_at is not None and now - resolved_at >= timedelta(hours=hours)
