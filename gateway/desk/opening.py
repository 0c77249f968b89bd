"""An agent opens a ticket for a customer, applied inside the pipeline's transaction.

The mail came to the agent's signed open address (rules/signed_addresses.py), which proves the agent is
who received that address in a notification, as a signed reply address does. The ticket
is the customer's: they are the requester and get the acknowledgement as if they had
written; their forwarded text and files are its first message; the agent's own words stay
an internal note, their `#` command lines are applied, and they are the assignee unless a
`#asignar` says otherwise. The history records who opened it. A request that cannot be
honoured changes nothing and the agent is told why.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol

from gateway.clock import Clock
from gateway.desk.notifications import Notifier
from gateway.desk.store import TicketStore
from gateway.inbound.spool import SpoolEntry
from gateway.model import Address, ParsedMail, Status, StoredMessage
from gateway.parsing.forwards import Request
from gateway.rules.commands import CommandError, Commands, parse_commands
from gateway.rules.fields import customer_fields
from gateway.rules.lifecycle import TransitionError, change
from gateway.rules.recipients import Event
from gateway.rules.tickets import cap_newcomers, is_ours, open_ticket
from gateway.settings import MailboxSettings, Settings


class Desk(Protocol):
    """What opening a ticket uses of actions.Desk (which calls in here, so this module
    names the parts it needs instead of importing it)."""

    settings: Settings
    clock: Clock
    store: TicketStore
    notifier: Notifier

    async def set_status(self, ticket_id: int, old: Status, new: Status, by: str, now: datetime) -> Status: ...

    async def tell_status(self, ticket_id: int, old: Status, new: Status, author: Address, trigger: str | None,
                          *, replied: bool = False, incident: str | None = None) -> int: ...  # fmt: skip


OPENED_BY = "opened_by"  # the history field naming the agent who opened a ticket for a customer
NO_CUSTOMER = "names no customer: forward their mail, or write #solicitante Name <address>"


async def open_for_customer(
    desk: Desk, entry: SpoolEntry, mail: ParsedMail, agent: Address, mailbox: MailboxSettings,
    request: Request | None,
) -> str:  # fmt: skip
    if request is None:
        return await refuse_opening(desk, agent, mailbox, mail, NO_CUSTOMER)
    requester = request.requester.address
    if is_ours(requester, desk.settings.our_addresses) or desk.settings.agents.is_agent(requester):
        why = f"the forwarded mail's sender <{requester}> is one of our own addresses: never a requester"
        return await refuse_opening(desk, agent, mailbox, mail, why)
    commands = parse_commands(request.note, agent=True, incident_values=desk.settings.tickets.incident_values)
    errors = [error.as_dict() for error in commands.errors]
    errors += [
        CommandError(f"#cc +{a}", "one of our own addresses: never a participant", "our_address", a).as_dict()
        for a in commands.cc_add
        if is_ours(a, desk.settings.our_addresses)
    ]
    if errors:
        return await refuse_opening(desk, agent, mailbox, mail, "bad command line(s)", errors)
    return await _open(desk, entry, mail, agent, mailbox, request, commands)


async def _open(
    desk: Desk, entry: SpoolEntry, mail: ParsedMail, agent: Address, mailbox: MailboxSettings, request: Request,
    commands: Commands,
) -> str:  # fmt: skip
    now = desk.clock.now()
    first = request.text if request.forwarded else commands.text
    fields = customer_fields(f"{request.text}\n{commands.text}", default_country=mailbox.country)
    new = open_ticket(
        replace(mail, subject=request.subject), request.requester, mailbox.as_mailbox(), fields,
        _copied(desk, request, commands),
    )  # fmt: skip
    ticket = await desk.store.create_ticket(new, now)
    desk.store.record_history(ticket.id, OPENED_BY, None, agent.address, agent.address, now)
    # The customer's words are theirs (forwarded) or the agent's account of them (from scratch).
    author = request.requester if request.forwarded else agent
    public = "public" if request.forwarded or not commands.internal else "internal"
    how = "forwarded by" if request.forwarded else "opened on the customer's behalf by"
    message = StoredMessage(
        message_id=mail.message_id, direction="inbound", author=author, to=(), cc=request.cc,
        subject=request.subject, date=mail.date, body=first, new_part=first, html=None,
        attachments=request.attachments, visibility=public, note=f"{how} agent <{agent.address}>",
    )  # fmt: skip
    await desk.store.add_message(ticket.id, entry.id, message, now)
    if request.forwarded and commands.text.strip():
        note = replace(message, message_id=None, author=agent, cc=(), body=commands.text, new_part=commands.text,
                       attachments=(), visibility="internal", note="agent note")  # fmt: skip
        await desk.store.add_message(ticket.id, entry.id, note, now)
    changes = {key: value for key, value in commands.changes.items() if key != "status"}
    changes.setdefault("assignee", agent.address)
    await desk.store.update_fields(ticket.id, changes, agent.address, now)
    queued = await desk.notifier.notify(ticket.id, Event.TICKET_CREATED, request.requester, mail.message_id)
    wanted = commands.changes.get("status")
    if wanted:
        try:
            status = change(Status.OPEN, Status(wanted)) or Status.OPEN
        except TransitionError:
            status = Status.OPEN
        await desk.set_status(ticket.id, Status.OPEN, status, agent.address, now)
        queued += await desk.tell_status(ticket.id, Status.OPEN, status, agent, mail.message_id)
    kind = "forwarded mail" if request.forwarded else "#solicitante"
    return (f"new ticket {ticket.number} in {mailbox.address} for <{request.requester.address}>, opened by agent"
            f" <{agent.address}> ({kind}), {len(commands.changes)} change(s), {queued} notification(s)")  # fmt: skip


def _copied(desk: Desk, request: Request, commands: Commands) -> tuple[Address, ...]:
    """Who the ticket copies: the forwarded mail's To/Cc and the note's `#cc +…`, but the
    requester, agents and our own addresses; capped as any mail's newcomers are."""
    people: dict[str, Address] = {}
    for person in (*request.cc, *(Address("", address) for address in commands.cc_add)):
        address = person.address
        if address == request.requester.address or desk.settings.agents.is_agent(address):
            continue
        if not is_ours(address, desk.settings.our_addresses):
            people.setdefault(address, person)
    limit = desk.settings.limits.max_new_participants_per_mail
    return cap_newcomers(tuple(people.values()), frozenset(), limit).added


async def refuse_opening(
    desk: Desk, agent: Address, mailbox: MailboxSettings, mail: ParsedMail, reason: str,
    errors: list[dict[str, object]] | None = None,
) -> str:  # fmt: skip
    """Nothing opened; the agent who wrote is told why (the mail goes to its From address,
    so a forger's mail reaches the agent it names, never a customer)."""
    await desk.notifier.notify_without_ticket(
        Event.OPEN_REFUSED, agent, mailbox.address, reason=reason, errors=errors or [], subject=mail.subject
    )
    return f"no ticket opened for agent <{agent.address}>: {reason}; the agent told"
