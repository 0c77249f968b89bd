"""The ticket lifecycle: one state machine, pure.

open → in_progress → waiting_customer → resolved → closed. A customer's reply reopens a
waiting or resolved ticket; a closed ticket never reopens (a reply to it starts a new,
linked ticket); a resolved ticket closes by itself `auto_close_hours` after resolution.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from gateway.tickets import Status

ACTIVE = frozenset({Status.OPEN, Status.IN_PROGRESS})
REOPENED_BY_CUSTOMER = frozenset({Status.WAITING_CUSTOMER, Status.RESOLVED})
# The changes customers are told of: resolution, closing, a reopening, and that we wait for them.
TOLD_TO_CUSTOMERS = frozenset({Status.RESOLVED, Status.CLOSED})


class News(StrEnum):
    """What a status change means to a customer: each has its own words (status_changed)."""

    REOPENED = "reopened"  # a resolved ticket is being worked on again
    WAITING = "waiting"  # we need something from them to go on
    RESOLVED = "resolved"  # with the rating question
    CLOSED = "closed"  # a new mail opens a follow-up


class TransitionError(Exception):
    """A status change the lifecycle does not allow; the message says why."""


def after_customer_reply(current: Status) -> Status | None:
    """The status a customer's reply moves the ticket to, or None for no change."""
    if current is Status.CLOSED:
        raise TransitionError("a closed ticket never reopens; the reply starts a follow-up ticket")
    return Status.OPEN if current in REOPENED_BY_CUSTOMER else None


def after_agent_reply(current: Status, configured: Status | None) -> Status | None:
    """An agent's public reply moves an active ticket to the configured status."""
    if configured is not None and current in ACTIVE and current is not configured:
        return configured
    return None


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


def customers_are_told(old: Status, new: Status) -> bool:
    return status_news(old, new) is not None


def incident_news(old: str | None, new: str | None) -> str | None:
    """The incident sub-status a customer is told of ("Incidencia en progreso"), if it changed."""
    return new if new and new != old else None


def auto_close_due(current: Status, resolved_at: datetime | None, now: datetime, hours: float) -> bool:
    return current is Status.RESOLVED and resolved_at is not None and now - resolved_at >= timedelta(hours=hours)
