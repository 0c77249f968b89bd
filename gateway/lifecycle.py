"""The ticket lifecycle: one state machine, pure.

open → in_progress → waiting_customer → resolved → closed. A customer's reply reopens a
waiting or resolved ticket; a closed ticket never reopens (a reply to it starts a new,
linked ticket); a resolved ticket closes by itself `auto_close_hours` after resolution.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.tickets import Status

ACTIVE = frozenset({Status.OPEN, Status.IN_PROGRESS})
REOPENED_BY_CUSTOMER = frozenset({Status.WAITING_CUSTOMER, Status.RESOLVED})
# The changes customers are told of: resolution, closing, and a reopening.
TOLD_TO_CUSTOMERS = frozenset({Status.RESOLVED, Status.CLOSED})


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
    return old is Status.RESOLVED and new not in TOLD_TO_CUSTOMERS


def customers_are_told(old: Status, new: Status) -> bool:
    return new in TOLD_TO_CUSTOMERS or is_reopening(old, new)


def auto_close_due(current: Status, resolved_at: datetime | None, now: datetime, hours: float) -> bool:
    return current is Status.RESOLVED and resolved_at is not None and now - resolved_at >= timedelta(hours=hours)
