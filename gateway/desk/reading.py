"""The read step: what a mail's decision needs from the database, the envelope and DNS.

`Reader.read` runs inside the pipeline's transaction and reads once what `decide` needs
(`decide.Reading`: the ticket the mail threads into, what its envelope proves), so the
decision itself stays pure. `dkim_domains` and `request` run before the transaction: one
asks DNS, the other does text work, and neither may hold the write lock. Nothing here
writes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from gateway.clock import Clock
from gateway.desk.decide import Reading
from gateway.desk.queries import TicketQueries
from gateway.desk.route import Clue, Route, route_mail
from gateway.desk.store import TicketStore
from gateway.inbound.spool import Spool, SpoolEntry
from gateway.model import Address, ParsedMail, Priority, Status, TicketRef, TicketType, TicketView
from gateway.outbound.outbox import Outbox, ReturnedMail
from gateway.parsing.forwards import Request, attached_message, request_in
from gateway.parsing.mail import parse_address
from gateway.rules.classify import Context, Verdict, classify
from gateway.rules.commands import Proof
from gateway.rules.signed_addresses import Rating, SignedTag, Signer, is_open_form, looks_signed, plus_tag
from gateway.rules.subject_token import ticket_numbers_in
from gateway.rules.tickets import Followed, is_ours, requester_of
from gateway.rules.trust import (
    DnsLookup,
    agent_domains,
    agent_proof,
    dkim_claims,
    signed_address_proves,
    verified_dkim_domains,
)
from gateway.settings import MailboxSettings, Settings

log = logging.getLogger(__name__)


@dataclass
class Reader:
    settings: Settings
    store: TicketStore
    queries: TicketQueries
    outbox: Outbox
    spool: Spool
    signer: Signer
    context: Context
    clock: Clock

    async def read(
        self, entry: SpoolEntry, mail: ParsedMail, verdict: Verdict, dkim_domains: frozenset[str],
        request: Request | None,
    ) -> Reading:  # fmt: skip
        """Everything the decision needs from the database and the envelope, read once."""
        if verdict.kind == "loop":
            return Reading()
        if verdict.kind == "bounce":
            return await self._read_report(entry, mail)
        author = requester_of(mail, parse_address(entry.mail_from))
        if author is None:
            return Reading()
        opening = self._opening(entry, author.address)
        signed, route = await self._route(entry, mail, author.address, opening)
        forged = self._unsigned_address(entry, mail, author) or ""
        reading = Reading(author, route, bool(signed), opening, forged, request=request)
        if forged:
            return replace(reading, forged_ticket=route.ticket or await self._ticket_named_by(forged))
        if verdict.kind != "normal":
            return reading
        if route.ticket is None:  # a new ticket may follow (not for an open address or "Mis tickets")
            return replace(reading, opened_this_hour=await self._opened_this_hour(author))
        if route.kind != "reply":
            return reading
        return await self._read_ticket(reading, route.ticket, entry, mail, author, dkim_domains)

    async def _route(
        self, entry: SpoolEntry, mail: ParsedMail, author: str, opening: str = ""
    ) -> tuple[tuple[Clue, ...], Route]:
        """The signed addresses among the envelope recipients, and the ticket they and the
        headers route the mail to."""
        signed = await self._signed_clues(entry, author)
        return signed, await route_mail(mail, self.store, signed, opening)

    async def _read_ticket(
        self, reading: Reading, ticket: TicketRef, entry: SpoolEntry, mail: ParsedMail, author: Address,
        dkim_domains: frozenset[str],
    ) -> Reading:  # fmt: skip
        """The ticket a reply threads into, and what proves who wrote it."""
        view = await self.store.ticket_view(ticket.id)
        rating = self._rating_in(entry, mail, ticket.number)
        if self.settings.agents.is_agent(author.address):
            proof = agent_proof(
                mail.headers, entry.peer, entry.rcpt_tos, ticket.number, author.address, self.settings.agents,
                self.settings.security, self.signer, dkim_domains,
            )  # fmt: skip
            reading = replace(reading, view=view, rating=rating, agent_proof=proof)
            return replace(reading, rated=await self._rated(ticket, rating))
        signed = any(self.signer.reply_address_verifies(a, ticket.number, author.address) for a in entry.rcpt_tos)
        proof_of_customer = Proof.SIGNED if signed else await self._answered(ticket, mail, author)
        reading = replace(reading, view=view, rating=rating, signed_reply=signed, customer_proof=proof_of_customer)
        if rating is not None:
            return replace(reading, rated=await self._rated(ticket, rating))
        return await self._read_follow_up(reading, view, author)

    async def _read_follow_up(self, reading: Reading, view: TicketView, author: Address) -> Reading:
        """What a new ticket from a customer's reply needs: the closed ticket's context (a
        follow-up), and for it or a non-participant's reply the author's tickets this hour."""
        participants = {view.requester.address, *(person.address for person in view.cc)}
        if view.status == Status.CLOSED:
            followed = await self._followed(view)
            return replace(reading, followed=followed, opened_this_hour=await self._opened_this_hour(author))
        if author.address not in participants and self.settings.tickets.unknown_sender_policy == "new_ticket":
            return replace(reading, opened_this_hour=await self._opened_this_hour(author))
        return reading

    async def _opened_this_hour(self, author: Address) -> int:
        return await self.store.tickets_opened_since(author.address, self.clock.now() - timedelta(hours=1))

    async def _followed(self, view: TicketView) -> Followed:
        """The closed ticket's context, for its follow-up: fields and the people still mailable."""
        shown = await self.queries.show_ticket(view.number) or {}
        valid = shown.get("fiscal_id_valid")
        people = tuple(p for p in (view.requester, *view.cc) if p.address not in view.unreachable)
        return Followed(
            id=view.id, subject=view.subject, type=TicketType(view.type), priority=Priority(view.priority),
            country=view.country, brand=view.brand, product=view.product, company=str(shown.get("company") or ""),
            phone=str(shown.get("phone") or ""), fiscal_id=str(shown["fiscal_id"]) if shown.get("fiscal_id") else None,
            fiscal_id_valid=None if valid is None else bool(valid), people=people,
        )  # fmt: skip

    async def _rated(self, ticket: TicketRef, rating: Rating | None) -> bool:
        return rating is not None and await self.store.is_rated(ticket.id, rating.resolution)

    async def _answered(self, ticket: TicketRef, mail: ParsedMail, author: Address) -> Proof:
        """A reply naming a mail we sent this person on this ticket: its Message-ID was only
        ever in their mailbox."""
        answered = await self.store.sent_to(ticket.id, (*mail.in_reply_to, *reversed(mail.references)), author.address)
        return Proof.NONE if answered is None else Proof.REPLY

    async def _read_report(self, entry: SpoolEntry, mail: ParsedMail) -> Reading:
        returned = await self._returned_mail(entry)
        if returned is None or returned.ticket_id is None:
            return Reading()
        ticket = await self.store.ticket_by_id(returned.ticket_id)
        stored = await self.store.ticket_holding_inbound(mail.message_id)
        return Reading(returned_ticket=ticket, returned_to=returned.recipients, stored_report=stored)

    def _unsigned_address(self, entry: SpoolEntry, mail: ParsedMail, author: Address) -> str | None:
        """An address of ours (envelope, To or Cc) whose tag has a signed form we did not sign
        for this sender or the agents: a forged or mangled rating or reply address."""
        ours = self.settings.our_addresses
        bound_to = (author.address, self.settings.agents.notify_address)
        for address in (*entry.rcpt_tos, *(person.address for person in (*mail.to, *mail.cc))):
            if looks_signed(address) and is_ours(address, ours) and not self.signer.verifies(address, bound_to):
                return address
        return None

    async def _ticket_named_by(self, address: str) -> TicketRef | None:
        for number in ticket_numbers_in(plus_tag(address), self.store.number_prefix):
            ticket = await self.store.ticket_by_number(number)
            if ticket is not None:
                return ticket
        return None

    def _opening(self, entry: SpoolEntry, author: str) -> str:
        """An envelope recipient that is an open address we signed for the author or the
        agents' address (as the notifier binds it), or "". Only the envelope, as for replies."""
        bound_to = (author, self.settings.agents.notify_address)
        verified = (r for r in entry.rcpt_tos if is_open_form(r) and self.signer.open_address_verifies(r, bound_to))
        return next(verified, "")

    def request(self, entry: SpoolEntry, mail: ParsedMail) -> Request | None:
        """What a mail to an open address asks for (forwards.py); None for any other mail.
        Text work, so called before the transaction."""
        if not any(is_open_form(recipient) for recipient in entry.rcpt_tos):
            return None
        attached = attached_message(mail)
        inner = attached.content if attached else None
        raw = inner.path.read_bytes() if inner is not None and not isinstance(inner, bytes) else inner
        return request_in(mail, raw)

    async def dkim_domains(self, entry: SpoolEntry, mail: ParsedMail, dns: DnsLookup | None) -> frozenset[str]:
        """Agents' domains whose DKIM signature on this mail verifies. It asks DNS, so only
        where configured, within [security] dkim_timeout_seconds, before the transaction,
        and only for a mail that passed every cheap check: an agent's reply to a ticket,
        signed by an agents' domain, not already proven by the signed reply address.
        `dns`: None for real DNS; tests hand in their keys."""
        security = self.settings.security
        sender = mail.sender.address if mail.sender else ""
        wanted = self._dkim_claims(mail, sender)
        if not wanted or classify(mail, entry.mail_from, self.context).kind != "normal":
            return frozenset()
        # Routed here without the lock to decide whether DNS is worth asking; `read` routes
        # again in the transaction, where what it finds is what the decision acts on.
        _, route = await self._route(entry, mail, sender)
        if (
            route.kind != "reply"
            or route.ticket is None
            or signed_address_proves(
                entry.rcpt_tos, route.ticket.number, sender, self.settings.agents.notify_address, self.signer
            )
        ):
            return frozenset()
        raw = await self.spool.raw(entry.id)
        seconds = security.dkim_timeout_seconds
        try:  # the thread runs on after a timeout, until dkimpy's own DNS timeout ends it
            async with asyncio.timeout(seconds):
                return await asyncio.to_thread(verified_dkim_domains, raw or b"", wanted, dns, seconds)
        except TimeoutError:
            shown = f"<{mail.message_id}>" if mail.message_id else "<no Message-ID>"
            log.warning("inbound %d %s: DKIM not verified within %ss", entry.id, shown, seconds)
            return frozenset()

    def may_verify_dkim(self, mail: ParsedMail) -> bool:
        """Whether `dkim_domains` may read the desk for this mail (cheap checks only)."""
        return bool(self._dkim_claims(mail, mail.sender.address if mail.sender else ""))

    def _dkim_claims(self, mail: ParsedMail, sender: str) -> frozenset[str]:
        if not self.settings.security.verify_dkim or not self.settings.agents.is_agent(sender):
            return frozenset()
        return dkim_claims(mail.headers, agent_domains(self.settings.agents, sender))

    async def _signed_clues(self, entry: SpoolEntry, author: str) -> tuple[Clue, ...]:
        """The tickets named by envelope recipients that are signed addresses of ours (a
        reply address counts when bound to the author or the agents' address, as the
        notifier binds it). Only the envelope: the To and Cc headers are the sender's word."""
        bound_to = (author, self.settings.agents.notify_address)
        clues = []
        for recipient in entry.rcpt_tos:
            tag = self.signer.signed_tag(recipient, bound_to)
            ticket = await self._ticket_of(tag) if tag is not None else None
            if tag is not None and ticket is not None:
                clues.append(Clue(ticket, f"signed {tag.kind} address <{recipient}>"))
        return tuple(clues)

    async def _ticket_of(self, tag: SignedTag) -> TicketRef | None:
        if tag.kind == "open":  # names no ticket: route.weigh opens one
            return None
        if tag.kind != "return":
            return await self.store.ticket_by_number(tag.number)
        returned = await self.outbox.sent_with_token(tag.token)  # None once the outbox is pruned
        if returned is None or returned.ticket_id is None:
            return None
        return await self.store.ticket_by_id(returned.ticket_id)

    async def _returned_mail(self, entry: SpoolEntry) -> ReturnedMail | None:
        """The mail of ours a report came back for, known by the signed return address it
        was sent to; a report that only names a ticket or a recipient proves nothing."""
        for recipient in entry.rcpt_tos:
            token = self.signer.bounce_token_in(recipient)
            if token is not None:
                return await self.outbox.sent_with_token(token)
        return None

    def _rating_in(self, entry: SpoolEntry, mail: ParsedMail, number: str) -> Rating | None:
        """A valid rating token for this ticket, in the envelope or the To/Cc headers."""
        for address in (*entry.rcpt_tos, *(person.address for person in (*mail.to, *mail.cc))):
            rating = self.signer.rating_in(address)
            if rating is not None and rating.number == number:
                return rating
        return None

    def mailbox_of(self, entry: SpoolEntry, mail: ParsedMail) -> MailboxSettings:
        """The mailbox the mail was delivered to; the headers decide when the envelope cannot."""
        header_addresses = [person.address for person in (*mail.to, *mail.cc)]
        for address in (*entry.rcpt_tos, *header_addresses):
            mailbox = self.settings.mailbox_for(address)
            if mailbox is not None:
                return mailbox
        return self.settings.mailboxes[0]
