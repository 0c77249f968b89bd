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
from typing import TypeAlias

from gateway.tickets import Status

ACTIVE = frozenset({Status.OPEN, Status.IN_PROGRESS})
REOPENED_BY_CUSTOMER = frozenset({Status.WAITING_CUSTOMER, Status.RESOLVED})
# The changes customers are told of: resolution, closing, and a reopening.
TOLD_TO_CUSTOMERS = frozenset({Status.RESOLVED, Status.CLOSED})


# A desk's transition table: the status a reply moves a ticket from → to; absent: no move.
Moves: TypeAlias = Mapping[Status, Status]
DEFAULT_CUSTOMER_REPLY_MOVES: Moves = {status: Status.OPEN for status in REOPENED_BY_CUSTOMER}


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
    return old is Status.RESOLVED and new not in TOLD_TO_CUSTOMERS


def customers_are_told(old: Status, new: Status, reads: Callable[[Status], str] | None = None) -> bool:
    """Whether customers hear of a change; never when, as `reads` (the desk's labels) shows
    them, nothing changed: a desk whose "resolved" and "closed" both read "Cerrado" tells
    its customers once, at resolution, not again at auto-close."""
    if reads is not None and reads(old) == reads(new):
        return False
    return new in TOLD_TO_CUSTOMERS or is_reopening(old, new)


def auto_close_due(current: Status, resolved_at: datetime | None, now: datetime, hours: float) -> bool:
    return current is Status.RESOLVED and resolved_at is not None and now - resolved_at >= timedelta(hours=hours)
