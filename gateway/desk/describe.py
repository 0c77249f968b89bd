"""A decision in one line: what the processing log line and `inbound list` show (stored
in the spool's `decision` column), e.g. "customer reply on TK-000003; status
resolved->open; notify customer_reply to agents+requester+cc"."""

from __future__ import annotations

from gateway.desk.decide import Decision, Notice
from gateway.rules.recipients import audiences


def describe(decision: Decision) -> str:
    """The decision in one line, for the log and `inbound list`."""
    number = decision.ticket.number if decision.ticket is not None and decision.ticket.number else ""
    on = f" on {number}" if number else ""
    parts = [f"{decision.action.replace('_', ' ')}{on}"]
    if decision.reason:
        parts[0] += f" ({decision.reason})"
    if decision.follow_up_of is not None:
        parts.append(f"follow-up of {decision.follow_up_of.number}")
    if decision.bounced:
        parts.append("stop mailing " + ", ".join(address for address, _ in decision.bounced))
    reply = decision.reply
    if reply is not None:
        parts[0] = f"{reply.by} {'reply' if reply.public else 'note' if reply.internal else 'commands'}{on}"
        if reply.wanted is not None and reply.wanted is not reply.old:
            parts.append(f"status {reply.old}->{reply.wanted}")
        if reply.fields:
            parts.append("set " + ", ".join(f"{key}={value}" for key, value in reply.fields.items()))
    told = [_told(notice) for notice in decision.notices]
    if told or reply is not None:
        parts.append("notify " + ", ".join(told) if told else "notify nobody")
    return "; ".join(parts)


def _told(notice: Notice) -> str:
    muted = f" (no {', '.join(sorted(notice.suppress))})" if notice.suppress else ""
    return f"{notice.event} to {'+'.join(audiences(notice.event))}{muted}"
