"""What a routed mail does to the desk, applied inside the pipeline's transaction.

Each method asks the pure domain (tickets, lifecycle, commands, fields, notify) what should
happen, writes the change and queues its notifications; it returns the outcome the log
line and `inbound list` show. Nothing here sends mail or commits.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.clock import Clock, timestamp
from gateway.desk.notifications import Notifier
from gateway.desk.queries import TicketFilter, TicketQueries
from gateway.desk.store import TicketStore
from gateway.inbound.spool import SpoolEntry
from gateway.model import Address, ParsedMail, Priority, Status, StoredMessage, TicketRef, TicketType, TicketView
from gateway.rules.classify import Verdict
from gateway.rules.commands import CommandError, Commands, Proof, Role, judge_customer_commands, parse_commands
from gateway.rules.fields import fields_from
from gateway.rules.lifecycle import (
    News,
    TransitionError,
    after_agent_reply,
    after_customer_reply,
    auto_close_due,
    change,
    customers_are_told,
    incident_news,
    is_reopening,
    status_news,
)
from gateway.rules.recipients import Event, customer_did, rating_told
from gateway.rules.signed_addresses import Rating
from gateway.rules.subjects import asks_for_open_only, follow_up_subject
from gateway.rules.tickets import (
    Followed,
    Newcomers,
    by_company,
    cap_newcomers,
    copied_people,
    is_ours,
    open_ticket,
)
from gateway.settings import MailboxSettings, Settings

log = logging.getLogger(__name__)

SYSTEM = "system"  # who made a change nobody made by mail (auto-close)
SHOWN_LEFT_OUT = 100  # copied addresses named in a note; the stored message keeps them all


class Desk:
    def __init__(
        self, settings: Settings, store: TicketStore, queries: TicketQueries, notifier: Notifier, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.queries = queries
        self.notifier = notifier
        self.clock = clock

    async def open_ticket(
        self, entry: SpoolEntry, mail: ParsedMail, author: Address, mailbox: MailboxSettings,
        follow_up_of: TicketRef | None = None,
    ) -> str:  # fmt: skip
        now = self.clock.now()
        text = _new_text(mail)
        fields = fields_from(mail.field_lines, default_country=mailbox.country)
        newcomers = self._newcomers(mail, author, frozenset())
        follows = await self._followed(follow_up_of) if follow_up_of else None
        new = open_ticket(mail, author, mailbox.as_mailbox(), fields, newcomers.added, follows)
        if follows is not None:
            new = replace(new, subject=follow_up_subject(mail.subject, self.store.number_prefix, follows.subject))
        recent = await self.store.tickets_opened_since(author.address, now - timedelta(hours=1))
        ticket = await self.store.create_ticket(new, now)
        note = self._left_out_note(newcomers)
        await self.store.add_message(ticket.id, entry.id, inbound_message(mail, author, text, note=note), now)
        limit = self.settings.limits.new_tickets_per_sender_per_hour
        over_limit = recent >= limit
        suppress = frozenset({"acknowledgement"}) if over_limit else frozenset()
        queued = await self.notifier.notify(
            ticket.id, Event.TICKET_CREATED, author, mail.message_id, suppress, extra=self._left_out(newcomers)
        )
        if recent == limit:  # the first mail over the limit: agents are told once
            queued += await self.notifier.notify(
                ticket.id, Event.RUNAWAY_SENDER, author, mail.message_id, extra={"limit": limit}
            )
        following = f", follow-up of closed {follow_up_of.number}" if follow_up_of else ""
        flagged = ", fiscal id flagged invalid" if new.fiscal_id_valid is False else ""
        muted = f", no acknowledgement: over {limit} new tickets in an hour" if over_limit else ""
        capped = f", {len(newcomers.left_out)} copied address(es) not added" if newcomers.left_out else ""
        return (f"new ticket {ticket.number} in {mailbox.address}{following}{flagged}{muted}{capped},"
                f" {queued} notification(s)")  # fmt: skip

    async def customer_reply(
        self, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address, mailbox: MailboxSettings,
        signed: bool = False,
    ) -> str:  # fmt: skip
        """A customer's reply; `signed`: it came to a signed address of ours bound to its author."""
        now = self.clock.now()
        view = await self.store.ticket_view(ticket.id)
        text = _new_text(mail)
        participants = frozenset({view.requester.address, *(person.address for person in view.cc)})
        policy = self.settings.tickets.unknown_sender_policy
        if author.address not in participants and policy == "new_ticket":
            return await self.open_ticket(entry, mail, author, mailbox)
        if author.address not in participants and policy == "flag":
            note = "unverified_sender: not a participant of this ticket; no commands honoured"
            await self._keep(ticket.id, entry, mail, author, text, "internal", note)
            queued = await self.notifier.notify(
                ticket.id, Event.UNVERIFIED_REPLY, author, mail.message_id, change={"unverified": True}
            )
            return f"reply to {ticket.number} from non-participant <{author.address}>: flagged for agents ({queued})"
        role = _role(author, view, participants)
        judged = judge_customer_commands(text, role, await self._customer_proof(ticket, mail, author, signed))
        if judged.refused:
            return await self.refuse(ticket, entry, mail, author, judged.refused)
        commands = judged.honoured
        newcomers = self._newcomers(mail, author, participants)
        message = inbound_message(mail, author, commands.text, note=self._left_out_note(newcomers))
        await self.store.add_message(ticket.id, entry.id, message, now)
        added = await self.store.add_participants(ticket.id, newcomers.added, "cc", now)
        old = Status(view.status)
        asked = commands.changes.get("status")
        wanted = Status(asked) if asked else after_customer_reply(old, self.settings.tickets.customer_reply_moves)
        fields = {key: value for key, value in commands.changes.items() if key != "status"}
        changed = await self.store.update_fields(ticket.id, fields, author.address, now)
        new = await self._set_status(ticket.id, old, wanted, author.address, now) if wanted else old
        confirmed = {key: commands.changes[key] for key in changed if key in commands.changes}
        if "status" in commands.changes and new is not old:
            confirmed["status"] = new
        did = customer_did(confirmed, is_reopening(old, new))  # named in the agents' notification
        queued = await self.notifier.notify(
            ticket.id, Event.CUSTOMER_REPLY, author, mail.message_id, addressed=addressed_by(mail),
            change={"status": new, "reopened": is_reopening(old, new), "did": did}, extra=self._left_out(newcomers),
        )  # fmt: skip
        queued += await self._tell_status(ticket.id, old, new, author, mail.message_id)
        if confirmed:  # to the requester even though they wrote it: a forgery shows at once
            queued += await self.notifier.notify(
                ticket.id, Event.COMMANDS_CONFIRMED, author, mail.message_id, change=confirmed
            )
        moved = f", {old} → {new}" if new is not old else ""
        return f"reply to {ticket.number}{moved}, {added} new cc, {queued} notification(s)"

    async def refuse(self, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address,
                     reason: str) -> str:  # fmt: skip
        """A mail that may not act on the ticket: kept as an internal entry saying why, agents
        told; no status change, no participant, nothing to the customer or anyone copied."""
        await self._keep(ticket.id, entry, mail, author, _new_text(mail), "internal", reason)
        queued = await self.notifier.notify(
            ticket.id, Event.UNVERIFIED_REPLY, author, mail.message_id, change={"refused": reason}
        )
        return f"mail on {ticket.number} from <{author.address}> kept for agents, nothing changed ({reason}), {queued}"

    async def agent_reply(
        self, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address, proof: str | None
    ) -> str:
        now = self.clock.now()
        text = _new_text(mail)
        if proof is None:
            note = "agent address but not authenticated: commands not honoured, nothing sent to the customer"
            log.warning("inbound %d: mail from agent <%s> on %s is not authenticated", entry.id, author.address,
                        ticket.number)  # fmt: skip
            await self._keep(ticket.id, entry, mail, author, text, "internal", note)
            # Told, so nothing an agent writes vanishes: the notice goes to the From address,
            # so a forger's mail reaches the agent it names, never the customer.
            queued = await self.notifier.notify(ticket.id, Event.AGENT_UNVERIFIED, author, mail.message_id)
            return f"unauthenticated agent mail on {ticket.number}: kept as internal note, the agent told ({queued})"
        commands = parse_commands(text, agent=True, incident_values=self.settings.tickets.incident_values)
        view = await self.store.ticket_view(ticket.id)
        old = Status(view.status)
        errors = [error.as_dict() for error in commands.errors]
        wanted = self._status_asked(commands, old, errors)
        ours = [address for address in commands.cc_add if is_ours(address, self.settings.our_addresses)]
        why = "one of our own addresses: never a participant"
        errors += [CommandError(_written_line(text, a), why, "our_address", a).as_dict() for a in ours]
        if errors:
            return await self._reject(ticket, entry, mail, author, text, errors)
        changed = await self.store.update_fields(ticket.id, _field_changes(commands), author.address, now)
        incident = incident_news(view.incident, commands.changes.get("incident")) if "incident" in changed else None
        await self.store.add_participants(ticket.id, (Address("", a) for a in commands.cc_add), "cc", now)
        await self.store.remove_participants(ticket.id, commands.cc_remove)
        public = bool(commands.text.strip()) and not commands.internal
        queued = 0
        if public:
            queued += await self._publish(view, entry, mail, author, commands.text, now)
            wanted = wanted or after_agent_reply(old, None, self.settings.tickets.agent_moves)
        else:
            visibility, note = ("internal", "agent note") if commands.internal else ("system", "commands only")
            await self._keep(ticket.id, entry, mail, author, commands.text or text, visibility, note)
        new = await self._set_status(ticket.id, old, wanted, author.address, now) if wanted else old
        queued += await self._tell_status(
            ticket.id, old, new, author, mail.message_id, replied=public, incident=incident
        )
        kind = "public reply" if public else ("internal note" if commands.internal else "commands")
        return f"agent {kind} on {ticket.number} ({proof}), {len(commands.changes)} change(s), {queued} notification(s)"

    async def rating(self, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address,
                     rating: Rating) -> str:  # fmt: skip
        view = await self.store.ticket_view(ticket.id)
        comment = _new_text(mail)
        recorded = 0 < rating.resolution <= view.resolutions and await self.store.add_rating(
            ticket.id, rating.resolution, rating.helpful, comment, self.clock.now()
        )
        verdict = "helpful" if rating.helpful else "not helpful"
        note = f"rating: {verdict}" if recorded else f"rating ignored: resolution {rating.resolution} already rated"
        await self._keep(ticket.id, entry, mail, author, comment, "system", note)
        # Agents hear of it either way (a refused second rating too); bounded like all our mail.
        told = rating_told(rating.helpful, comment, bool(recorded))
        queued = await self.notifier.notify(ticket.id, Event.RATED, author, mail.message_id, change={"rating": told})
        return f"{note} on {ticket.number}, {queued} notification(s)"

    async def bounce(self, entry: SpoolEntry, mail: ParsedMail, verdict: Verdict, ticket_id: int,
                     recipients: tuple[str, ...]) -> str:  # fmt: skip
        """A report on a mail of ours to `recipients`: stop mailing those it says failed (a
        report without a readable status, for a mail to one person, is about that one)."""
        failures = (
            [(f.recipient, f"{f.status} {f.diagnostic}".strip()) for f in mail.report.failures] if mail.report else []
        )
        if not failures and len(recipients) == 1:
            failures = [(recipients[0], f"undeliverable: {mail.subject}".strip())]
        failed = [(address, diagnostic) for address, diagnostic in failures if address in recipients]
        for address, diagnostic in failed:
            await self.store.mark_bounced(ticket_id, address, diagnostic)
        who = ", ".join(address for address, _ in failed) or "no recipient of that mail"
        await self._keep(ticket_id, entry, mail, mail.sender or Address("", ""), mail.text, "system", f"bounce: {who}")
        number = (await self.store.ticket_view(ticket_id)).number
        return f"bounce on {number}: {who} no longer mailed on this ticket ({verdict.rule})"

    async def keep_automatic(self, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address,
                             verdict: Verdict) -> str:  # fmt: skip
        """Automatic mail into a ticket: a system entry for agents; no status change, no mail."""
        await self._keep(ticket.id, entry, mail, author, _new_text(mail), "system", str(verdict))
        return f"{verdict.kind} kept on {ticket.number} as a system entry ({verdict.rule}); nothing sent"

    async def my_tickets(self, entry: SpoolEntry, mail: ParsedMail, author: Address, mailbox: MailboxSettings) -> str:
        """The tickets the author takes part in (as requester or copied), or only the
        unfinished ones for "Mis tickets abiertos"."""
        only_open = asks_for_open_only(mail.subject)
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
        await self._set_status(ticket_id, Status.RESOLVED, Status.CLOSED, SYSTEM, now)
        await self._tell_status(ticket_id, Status.RESOLVED, Status.CLOSED, Address("", SYSTEM), None)
        return True

    # -- steps ------------------------------------------------------------------------------

    async def _followed(self, ref: TicketRef) -> Followed:
        """The closed ticket's context, for its follow-up: fields and the people still mailable."""
        view = await self.store.ticket_view(ref.id)
        shown = await self.queries.show_ticket(ref.number) or {}
        valid = shown.get("fiscal_id_valid")
        people = tuple(p for p in (view.requester, *view.cc) if p.address not in view.unreachable)
        return Followed(
            id=view.id, subject=view.subject, type=TicketType(view.type), priority=Priority(view.priority),
            country=view.country, brand=view.brand, product=view.product, company=str(shown.get("company") or ""),
            phone=str(shown.get("phone") or ""), fiscal_id=str(shown["fiscal_id"]) if shown.get("fiscal_id") else None,
            fiscal_id_valid=None if valid is None else bool(valid), people=people,
        )  # fmt: skip

    def _status_asked(self, commands: Commands, old: Status, errors: list[dict[str, object]]) -> Status | None:
        if "status" not in commands.changes:
            return None
        try:
            return change(old, Status(commands.changes["status"]))
        except TransitionError as error:
            line = commands.written.get("status", f"#estado {commands.changes['status']}")
            errors.append(CommandError(line, str(error), "closed_never_reopens", str(old)).as_dict())
            return None

    async def _customer_proof(self, ticket: TicketRef, mail: ParsedMail, author: Address, signed: bool) -> Proof:
        """What says a customer's mail is theirs: a signed address, or a reply naming a mail we
        sent them on this ticket (its Message-ID was only ever in their mailbox)."""
        if signed:
            return Proof.SIGNED
        answered = await self.store.sent_to(ticket.id, (*mail.in_reply_to, *reversed(mail.references)), author.address)
        return Proof.NONE if answered is None else Proof.REPLY

    def _newcomers(self, mail: ParsedMail, author: Address, known: frozenset[str]) -> Newcomers:
        copied = copied_people(mail, self.settings.our_addresses, exclude=author.address)
        return cap_newcomers(copied, known, self.settings.limits.max_new_participants_per_mail)

    def _left_out(self, newcomers: Newcomers) -> dict[str, object]:
        """What the agents' notification says of copied people who were not added."""
        left_out = [person.address for person in newcomers.left_out]
        return {"left_out": left_out[:SHOWN_LEFT_OUT], "left_out_count": len(left_out),
                "participant_limit": self.settings.limits.max_new_participants_per_mail}  # fmt: skip

    def _left_out_note(self, newcomers: Newcomers) -> str | None:
        if not newcomers.left_out:
            return None
        shown = ", ".join(person.address for person in newcomers.left_out[:SHOWN_LEFT_OUT])
        more = len(newcomers.left_out) - SHOWN_LEFT_OUT
        rest = f" and {more} more (all in this message's To/Cc)" if more > 0 else ""
        limit = self.settings.limits.max_new_participants_per_mail
        return f"{len(newcomers.left_out)} copied address(es) not added (at most {limit} per mail): {shown}{rest}"

    async def _reject(self, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address, text: str,
                      errors: list[dict[str, object]]) -> str:  # fmt: skip
        note = "rejected: " + "; ".join(f"{e['line']}: {e['reason']}" for e in errors)
        await self._keep(ticket.id, entry, mail, author, text, "internal", note)
        await self.notifier.notify(
            ticket.id, Event.COMMANDS_REJECTED, author, mail.message_id, extra={"errors": errors}
        )
        return f"agent reply on {ticket.number} rejected ({len(errors)} bad command line(s)); the agent was told"

    async def _publish(self, view: TicketView, entry: SpoolEntry, mail: ParsedMail, author: Address, text: str,
                       now: datetime) -> int:  # fmt: skip
        """An agent's public reply: stored as support's message, sent to the requester and CC."""
        message = StoredMessage(
            message_id=mail.message_id, direction="outbound", author=author, to=mail.to, cc=mail.cc,
            subject=mail.subject, date=mail.date, body=mail.text, new_part=text, html=mail.html,
            attachments=mail.attachments,
        )  # fmt: skip
        await self.store.add_message(view.id, entry.id, message, now)
        if view.first_response_at is None:
            await self.store.update_fields(view.id, {"first_response_at": timestamp(now)}, author.address, now)
        # The agent's name may show; their own address never does (From is the mailbox).
        mailbox_name = self.notifier.mailbox_of(view.mailbox).name
        from_name = f"{author.name} · {mailbox_name}" if author.name and mailbox_name else (author.name or None)
        return await self.notifier.notify(
            view.id, Event.AGENT_REPLY, author, mail.message_id, addressed=addressed_by(mail),
            attachments=mail.attachments, from_name=from_name,
        )  # fmt: skip

    async def _keep(self, ticket_id: int, entry: SpoolEntry, mail: ParsedMail, author: Address, text: str,
                    visibility: str, note: str) -> None:  # fmt: skip
        message = inbound_message(mail, author, text, visibility=visibility, note=note)
        await self.store.add_message(ticket_id, entry.id, message, self.clock.now())

    async def _set_status(self, ticket_id: int, old: Status, new: Status, by: str, now: datetime) -> Status:
        changes: dict[str, object] = {"status": new}
        if new is Status.RESOLVED:
            view = await self.store.ticket_view(ticket_id)
            changes.update(resolved_at=timestamp(now), resolutions=view.resolutions + 1)
        elif new is Status.CLOSED:
            changes["closed_at"] = timestamp(now)
        await self.store.update_fields(ticket_id, changes, by, now)
        return new

    async def _tell_status(self, ticket_id: int, old: Status, new: Status, author: Address, trigger: str | None,
                           *, replied: bool = False, incident: str | None = None) -> int:  # fmt: skip
        """One mail to the customer naming what changed (lifecycle decides what is news);
        `replied`: the same mail already sent them support's reply."""
        news = status_news(old, new, replied=replied)
        # Told in the words of the ticket's mailbox: a change they would read as no change is not told.
        language = self.notifier.mailbox_of((await self.store.ticket_view(ticket_id)).mailbox).language
        if news is not None and not customers_are_told(old, new, lambda s: self.settings.label(s, language)):
            news = None
        if news is None and incident is None:
            return 0
        change_details = {"status": new, "news": news, "reopened": news is News.REOPENED, "incident": incident}
        return await self.notifier.notify(ticket_id, Event.STATUS_CHANGED, author, trigger, change=change_details)


def _new_text(mail: ParsedMail) -> str:
    return mail.new_part  # made by the parser worker (workers.read_mail), before the transaction


def addressed_by(mail: ParsedMail) -> frozenset[str]:
    """Who a mail went to directly (To and Cc): they need no copy of its words from us."""
    return frozenset(person.address.lower() for person in (*mail.to, *mail.cc))


def _role(author: Address, view: TicketView, participants: frozenset[str]) -> Role:
    if author.address == view.requester.address:
        return Role.REQUESTER
    return Role.CC if author.address in participants else Role.OTHER


def _written_line(text: str, address: str) -> str:
    """The agent's own #cc line naming `address`, to quote back to them."""
    lines = (line.strip() for line in text.splitlines())
    return next((line for line in lines if line.startswith("#") and address in line.lower()), f"#cc +{address}")


def _field_changes(commands: Commands) -> dict[str, object]:
    return {key: value for key, value in commands.changes.items() if key != "status"}


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
