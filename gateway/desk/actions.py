"""A mail's decision (decide.py), applied inside the pipeline's transaction.

`Desk.apply` writes what the decision says and queues the notifications it names, in the
order the decision gives; it returns the outcome the log line and `inbound list` show.
The one answer only the write has (the next ticket number) comes from it; everything the
decision needs was read before it (reading.py). Nothing here sends mail or commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.clock import Clock, timestamp
from gateway.desk.decide import (
    Decision,
    Notice,
    Reading,
    left_out_note,
    newcomers_of,
    status_notice,
)
from gateway.desk.notifications import Notifier
from gateway.desk.opening import open_for_customer, refuse_opening
from gateway.desk.queries import TicketFilter, TicketQueries
from gateway.desk.store import TicketStore
from gateway.inbound.spool import SpoolEntry
from gateway.model import (
    Address,
    Attachment,
    ParsedMail,
    Status,
    StoredMessage,
    TicketRef,
    TicketView,
)
from gateway.rules.fields import fields_from
from gateway.rules.lifecycle import auto_close_due
from gateway.rules.recipients import Event
from gateway.rules.subjects import follow_up_subject
from gateway.rules.tickets import Followed, by_company, open_ticket
from gateway.settings import MailboxSettings, Settings

log = logging.getLogger(__name__)

SYSTEM = "system"  # who made a change nobody made by mail (auto-close)


class Desk:
    def __init__(
        self, settings: Settings, store: TicketStore, queries: TicketQueries, notifier: Notifier, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.queries = queries
        self.notifier = notifier
        self.clock = clock

    async def apply(
        self, decision: Decision, entry: SpoolEntry, mail: ParsedMail, mailbox: MailboxSettings, reading: Reading
    ) -> str:
        """Write what `decision` says; the outcome, as the log line and `inbound list` show it."""
        action, ticket, author = decision.action, decision.ticket, decision.author or Address("", "")
        if action == "ignore":
            return decision.reason
        if action == "my_tickets":
            return await self.my_tickets(author, mailbox, decision.only_open)
        if action == "open_for_customer":
            return await open_for_customer(self, entry, mail, author, mailbox, reading.request)
        if action == "refuse_opening":
            return await refuse_opening(self, author, mailbox, mail, decision.reason)
        if action == "new_ticket":
            return await self.open_ticket(decision, entry, mail, mailbox, reading.followed)
        assert ticket is not None, f"a decision to {action} names its ticket"
        if action == "duplicate":
            return f"duplicate ({decision.reason}), ticket {ticket.number} unchanged"
        if action == "bounce":
            return await self.bounce(decision, ticket, entry, mail)
        if action == "keep_automatic":
            await self._keep(ticket.id, entry, mail, author, _new_text(mail), "system", str(decision.verdict))
            return f"{decision.verdict.kind if decision.verdict else ''} kept on {ticket.number} as a system entry" \
                   f" ({decision.reason}); nothing sent"  # fmt: skip
        if action == "refuse":
            await self._keep(ticket.id, entry, mail, author, _new_text(mail), "internal", decision.reason)
            queued = await self._tell(ticket.id, decision.notices, author, mail.message_id)
            return (f"mail on {ticket.number} from <{author.address}> kept for agents, nothing changed"
                    f" ({decision.reason}), {queued}")  # fmt: skip
        if action == "rating":
            return await self.rating(decision, ticket, entry, mail)
        if action == "flag_unverified":
            return await self.flag_unverified(decision, ticket, entry, mail)
        if action == "customer_reply":
            return await self.customer_reply(decision, ticket, entry, mail)
        if action == "agent_unverified":
            return await self.agent_unverified(decision, ticket, entry, mail)
        if action == "reject_commands":
            return await self._reject(decision, ticket, entry, mail, author, _new_text(mail))
        assert reading.view is not None
        return await self.agent_reply(decision, ticket, entry, mail, reading.view)

    async def open_ticket(
        self, decision: Decision, entry: SpoolEntry, mail: ParsedMail, mailbox: MailboxSettings,
        follows: Followed | None,
    ) -> str:  # fmt: skip
        """A new ticket, its first message, and the notifications the decision names
        (`follows`: the closed ticket a follow-up starts from)."""
        now = self.clock.now()
        author, follow_up_of = decision.author or Address("", ""), decision.follow_up_of
        fields = fields_from(mail.field_lines, default_country=mailbox.country)
        newcomers = newcomers_of(mail, author, frozenset(), self.settings)
        new = open_ticket(mail, author, mailbox.as_mailbox(), fields, newcomers.added, follows)
        if follows is not None:
            new = replace(new, subject=follow_up_subject(mail.subject, self.store.number_prefix, follows.subject))
        ticket = await self.store.create_ticket(new, now)
        message = inbound_message(mail, author, _new_text(mail), note=left_out_note(newcomers, self.settings))
        await self.store.add_message(ticket.id, entry.id, message, now)
        queued = await self._tell(ticket.id, decision.notices, author, mail.message_id)
        limit = self.settings.limits.new_tickets_per_sender_per_hour
        following = f", follow-up of closed {follow_up_of.number}" if follow_up_of else ""
        flagged = ", fiscal id flagged invalid" if new.fiscal_id_valid is False else ""
        muted = any(notice.suppress for notice in decision.notices)
        over = f", no acknowledgement: over {limit} new tickets in an hour" if muted else ""
        capped = f", {len(newcomers.left_out)} copied address(es) not added" if newcomers.left_out else ""
        return (f"new ticket {ticket.number} in {mailbox.address}{following}{flagged}{over}{capped},"
                f" {queued} notification(s)")  # fmt: skip

    async def flag_unverified(self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail) -> str:
        """A reply from someone not on the ticket, where the desk flags such mail: agents only."""
        author = decision.author or Address("", "")
        note = "unverified_sender: not a participant of this ticket; no commands honoured"
        await self._keep(ticket.id, entry, mail, author, _new_text(mail), "internal", note)
        queued = await self._tell(ticket.id, decision.notices, author, mail.message_id)
        return f"reply to {ticket.number} from non-participant <{author.address}>: flagged for agents ({queued})"

    async def customer_reply(self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail) -> str:
        now = self.clock.now()
        author = decision.author or Address("", "")
        reply = decision.reply
        assert reply is not None, "a customer's reply decision says what the reply does"
        await self.store.add_message(
            ticket.id, entry.id, inbound_message(mail, author, reply.text, note=reply.note), now
        )
        added = await self.store.add_participants(ticket.id, reply.cc_add, "cc", now)
        await self.store.update_fields(ticket.id, reply.fields, author.address, now)
        if reply.wanted:
            await self.set_status(ticket.id, reply.old, reply.wanted, author.address, now)
        queued = await self._tell(ticket.id, decision.notices, author, mail.message_id)
        moved = f", {reply.old} → {reply.new}" if reply.new is not reply.old else ""
        return f"reply to {ticket.number}{moved}, {added} new cc, {queued} notification(s)"

    async def agent_reply(
        self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, view: TicketView
    ) -> str:
        now = self.clock.now()
        author = decision.author or Address("", "")
        reply = decision.reply
        assert reply is not None
        await self.store.update_fields(ticket.id, reply.fields, author.address, now)
        await self.store.add_participants(ticket.id, reply.cc_add, "cc", now)
        await self.store.remove_participants(ticket.id, reply.cc_remove)
        # Support's answer goes out as stored, before the status moves (its mail shows the ticket then).
        answer = [notice for notice in decision.notices if notice.event is Event.AGENT_REPLY]
        queued = 0
        if reply.public:
            await self._publish(view, entry, mail, author, reply.text, now)
            queued += await self._tell(ticket.id, answer, author, mail.message_id, mail.attachments)
        else:
            visibility, note = ("internal", "agent note") if reply.internal else ("system", "commands only")
            await self._keep(ticket.id, entry, mail, author, reply.text, visibility, note)
        if reply.wanted:
            await self.set_status(ticket.id, reply.old, reply.wanted, author.address, now)
        rest = [notice for notice in decision.notices if notice not in answer]
        queued += await self._tell(ticket.id, rest, author, mail.message_id)
        kind = "public reply" if reply.public else ("internal note" if reply.internal else "commands")
        return (f"agent {kind} on {ticket.number} ({decision.reason}), {reply.commands} change(s),"
                f" {queued} notification(s)")  # fmt: skip

    async def agent_unverified(self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail) -> str:
        """Mail from an agent's address that nothing authenticates: an internal note, the agent told."""
        author = decision.author or Address("", "")
        note = "agent address but not authenticated: commands not honoured, nothing sent to the customer"
        log.warning("inbound %d: mail from agent <%s> on %s is not authenticated", entry.id, author.address,
                    ticket.number)  # fmt: skip
        await self._keep(ticket.id, entry, mail, author, _new_text(mail), "internal", note)
        queued = await self._tell(ticket.id, decision.notices, author, mail.message_id)
        return f"unauthenticated agent mail on {ticket.number}: kept as internal note, the agent told ({queued})"

    async def rating(self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail) -> str:
        """A rating the decision counts is recorded; either way the mail is kept with the
        decision's note and the agents are told."""
        rating, author = decision.rating, decision.author or Address("", "")
        comment = _new_text(mail)
        if rating is not None:  # INSERT OR IGNORE: a rating counted once, whatever the read step saw
            await self.store.add_rating(ticket.id, rating.resolution, rating.helpful, comment, self.clock.now())
        await self._keep(ticket.id, entry, mail, author, comment, "system", decision.reason)
        queued = await self._tell(ticket.id, decision.notices, author, mail.message_id)
        return f"{decision.reason} on {ticket.number}, {queued} notification(s)"

    async def bounce(self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail) -> str:
        """A report on a mail of ours: stop mailing the recipients the decision names."""
        for address, diagnostic in decision.bounced:
            await self.store.mark_bounced(ticket.id, address, diagnostic)
        who = ", ".join(address for address, _ in decision.bounced) or "no recipient of that mail"
        await self._keep(ticket.id, entry, mail, mail.sender or Address("", ""), mail.text, "system", f"bounce: {who}")
        return f"bounce on {ticket.number}: {who} no longer mailed on this ticket ({decision.reason})"

    async def my_tickets(self, author: Address, mailbox: MailboxSettings, only_open: bool) -> str:
        """The tickets the author takes part in (as requester or copied), or only the
        unfinished ones for "Mis tickets abiertos"."""
        narrow = TicketFilter(participant=author.address, unfinished=only_open)
        tickets = await self.queries.list_tickets(narrow, newest_first=True)
        if mailbox.company_tickets_visible:  # colleagues' too, by the same valid fiscal id only
            known = {ticket["number"] for ticket in tickets}
            colleagues = await self.queries.company_tickets(author.address, only_open)
            tickets = sorted([*tickets, *(t for t in colleagues if t["number"] not in known)],
                             key=lambda t: str(t["number"]), reverse=True)  # fmt: skip
        answers = await self.queries.last_support_answers([str(ticket["number"]) for ticket in tickets])
        listing = [{**ticket, "last_answer": answers.get(str(ticket["number"]))} for ticket in tickets]
        await self.notifier.notify_without_ticket(
            Event.MY_TICKETS, author, mailbox.address, tickets=listing, companies=by_company(listing)
        )
        which = "open ticket(s)" if only_open else "ticket(s)"
        return f"sent the list of {len(listing)} {which} to <{author.address}>; no ticket created"

    async def close_stale(self, ticket_id: int, now: datetime) -> bool:
        """Close a resolved ticket whose time is up (the lifecycle decides); True if closed."""
        view = await self.store.ticket_view(ticket_id)
        resolved_at = datetime.fromisoformat(view.resolved_at) if view.resolved_at else None
        if not auto_close_due(Status(view.status), resolved_at, now, self.settings.tickets.auto_close_hours):
            return False
        await self.set_status(ticket_id, Status.RESOLVED, Status.CLOSED, SYSTEM, now)
        await self.tell_status(ticket_id, Status.RESOLVED, Status.CLOSED, Address("", SYSTEM), None)
        return True

    # -- steps ------------------------------------------------------------------------------

    async def _reject(self, decision: Decision, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail,
                      author: Address, text: str) -> str:  # fmt: skip
        errors = decision.errors
        note = "rejected: " + "; ".join(f"{e['line']}: {e['reason']}" for e in errors)
        await self._keep(ticket.id, entry, mail, author, text, "internal", note)
        await self._tell(ticket.id, decision.notices, author, mail.message_id)
        return f"agent reply on {ticket.number} rejected ({len(errors)} bad command line(s)); the agent was told"

    async def _publish(self, view: TicketView, entry: SpoolEntry, mail: ParsedMail, author: Address, text: str,
                       now: datetime) -> None:  # fmt: skip
        """An agent's public reply, stored as support's message."""
        message = StoredMessage(
            message_id=mail.message_id, direction="outbound", author=author, to=mail.to, cc=mail.cc,
            subject=mail.subject, date=mail.date, body=mail.text, new_part=text, html=mail.html,
            attachments=mail.attachments,
        )  # fmt: skip
        await self.store.add_message(view.id, entry.id, message, now)
        if view.first_response_at is None:
            await self.store.update_fields(view.id, {"first_response_at": timestamp(now)}, author.address, now)

    async def _keep(self, ticket_id: int, entry: SpoolEntry, mail: ParsedMail, author: Address, text: str,
                    visibility: str, note: str) -> None:  # fmt: skip
        message = inbound_message(mail, author, text, visibility=visibility, note=note)
        await self.store.add_message(ticket_id, entry.id, message, self.clock.now())

    async def set_status(self, ticket_id: int, old: Status, new: Status, by: str, now: datetime) -> Status:
        changes: dict[str, object] = {"status": new}
        if new is Status.RESOLVED:
            view = await self.store.ticket_view(ticket_id)
            changes.update(resolved_at=timestamp(now), resolutions=view.resolutions + 1)
        elif new is Status.CLOSED:
            changes["closed_at"] = timestamp(now)
        await self.store.update_fields(ticket_id, changes, by, now)
        return new

    async def tell_status(self, ticket_id: int, old: Status, new: Status, author: Address, trigger: str | None,
                           *, replied: bool = False, incident: str | None = None) -> int:  # fmt: skip
        """One mail to the customer naming what changed (decide.status_notice)."""
        view = await self.store.ticket_view(ticket_id)
        notice = status_notice(view, old, new, self.settings, replied=replied, incident=incident)
        return await self._tell(ticket_id, [notice] if notice else [], author, trigger)

    async def _tell(self, ticket_id: int, notices: Sequence[Notice], author: Address, trigger: str | None,
                    attachments: tuple[Attachment, ...] = ()) -> int:  # fmt: skip
        """Queue the notifications a decision names, in its order; how many mails were queued."""
        queued = 0
        for notice in notices:
            occasion: dict[str, Any] = {}
            if notice.change:
                occasion["change"] = dict(notice.change)
            if notice.extra:
                occasion["extra"] = dict(notice.extra)
            if notice.with_attachments:
                occasion.update(attachments=attachments, from_name=notice.from_name)
            queued += await self.notifier.notify(ticket_id, notice.event, author, trigger, notice.suppress,
                                                 addressed=notice.addressed, **occasion)  # fmt: skip
        return queued


def _new_text(mail: ParsedMail) -> str:
    return mail.new_part  # made by the parser worker (workers.read_mail), before the transaction


def inbound_message(
    mail: ParsedMail, author: Address, new_part: str, visibility: str = "public", note: str | None = None
) -> StoredMessage:
    return StoredMessage(
        message_id=mail.message_id,
        direction="inbound",
        author=author,
        to=mail.to,
        cc=mail.cc,
        subject=mail.subject,
        date=mail.date,
        body=mail.text,
        new_part=new_part,
        html=mail.html,
        attachments=mail.attachments,
        visibility=visibility,
        note=note,
    )
