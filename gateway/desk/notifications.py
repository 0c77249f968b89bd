"""Turning an event on a ticket into rendered mail in the outbox (the I/O side of rules/recipients.py)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from gateway.desk.store import TicketStore
from gateway.model import Address, MessageView, Status, TicketView
from gateway.outbound import mime
from gateway.outbound.outbox import OutboundMail, Outbox
from gateway.outbound.render import Carried, Occasion, Renderer, fit
from gateway.rules.recipients import (
    Allowance,
    Event,
    MailLimits,
    People,
    PlannedMail,
    RecentMail,
    allow,
    cap_recipients,
    keep_only,
    plan,
    tally,
)
from gateway.rules.signed_addresses import Signer, message_token
from gateway.settings import MailboxSettings, Settings

log = logging.getLogger(__name__)

MUTE_WINDOW = timedelta(hours=1)  # the bounds of settings.NotificationSettings are per hour
MUTED_FIELD = "notifications_muted"  # the history entry that says agents were told
SYSTEM = "system"
# A customer's mail, told to agents: their notification carries its files.
CARRIES_FILES = frozenset({Event.TICKET_CREATED, Event.CUSTOMER_REPLY, Event.UNVERIFIED_REPLY})


class Notifier:
    """Turns an event on a ticket into rendered mail in the outbox, in the caller's transaction."""

    def __init__(self, settings: Settings, store: TicketStore, outbox: Outbox, renderer: Renderer, signer: Signer):
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.renderer = renderer
        self.signer = signer
        bounds = settings.notifications
        self.limits = MailLimits(
            per_recipient=bounds.per_recipient_per_ticket_per_hour,
            per_ticket=bounds.per_ticket_per_hour,
            notices=bounds.muted_notices_per_ticket_per_hour,
        )

    async def notify(
        self,
        ticket_id: int,
        event: Event,
        author: Address,
        trigger_message_id: str | None = None,
        suppress: frozenset[str] = frozenset(),
        addressed: frozenset[str] = frozenset(),
        **occasion: Any,
    ) -> int:
        """Queue the mail `event` causes, but for templates in `suppress` and recipients past
        their hourly bound (notify.allow); `addressed`: the triggering mail's To and Cc (they
        have its words already); `occasion` fills `Occasion` (change, attachments, extra…).
        Returns how many mails were queued."""
        ticket, recent = await self._ticket_and_recent(ticket_id)
        mailbox = self.mailbox_of(ticket.mailbox)
        people = replace(self._people(author, ticket.requester, ticket.cc, ticket.unreachable), addressed=addressed)
        change = dict(occasion.pop("change", {}))
        if change.get("status") == Status.RESOLVED:
            change.update(self._rating_links(mailbox.address, ticket))
        planned = plan(event, people, self.settings.outbound.copy_customer_replies_to_participants)
        queued, tell_agents = 0, False
        newly_muted: list[str] = []
        carried: Carried | None = None  # read once, when an agents' mail is really written
        for notification in (self._capped(ticket.number, n) for n in planned if n.template not in suppress):
            allowance = self._allowance(ticket.id, notification, recent)
            recent = recent.told(allowance.newly_muted)
            newly_muted += allowance.newly_muted
            tell_agents = tell_agents or allowance.tell_agents
            bounded = keep_only(notification, allowance.kept)
            if bounded is None:
                continue
            reply_to = self._reply_to(bounded, mailbox, ticket.number)
            trigger = ticket.message(trigger_message_id)
            if bounded.for_agents and event in CARRIES_FILES and carried is None:
                carried = await self._carried(trigger)
            details = Occasion(trigger, change, reply_to=reply_to, carried=carried or Carried(),
                               open_address=self._open_address(bounded, mailbox), **occasion)  # fmt: skip
            mail = self._queue(ticket.id, self.renderer.render(bounded, ticket, mailbox, details))
            recent = recent.with_mail(mail.template, mail.recipients)
            queued += 1
        if tell_agents:
            queued += await self._tell_agents_of_muting(ticket_id, newly_muted, trigger_message_id)
        return queued

    async def notify_without_ticket(self, event: Event, author: Address, mailbox_address: str, **extra: Any) -> int:
        """Mail about no one ticket (the list of a customer's tickets)."""
        mailbox = self.mailbox_of(mailbox_address)
        planned = plan(event, self._people(author, author, (), frozenset()), copy_participants=False)
        for notification in planned:
            details = Occasion(None, extra=extra, open_address=self._open_address(notification, mailbox))
            self._queue(None, self.renderer.render(notification, None, mailbox, details))
        return len(planned)

    async def _carried(self, trigger: MessageView | None) -> Carried:
        """The customer's files for agents, up to the bound per mail; each read from the
        store in pieces straight into its base64 lines."""
        bound = self.settings.outbound.max_agent_attachment_bytes
        if trigger is None or trigger.direction != "inbound":
            return Carried(bound=bound)
        taken, left_out = fit(trigger.files, bound)
        files: list[tuple[str, str, mime.Content]] = []
        for file in taken:
            lines = mime.Base64Lines()
            if await self.store.read_blob(file.sha256, lines.write):
                files.append((file.filename, file.content_type, lines.done()))
        return Carried(tuple(files), tuple(left_out), bound)

    def _capped(self, number: str, notification: PlannedMail) -> PlannedMail:
        capped, left_out = cap_recipients(notification, self.settings.limits.max_recipients_per_notification)
        if left_out:
            log.warning("ticket %s: %s not sent to %d of its recipients (at most %d per mail): %s", number,
                        notification.template, len(left_out), self.settings.limits.max_recipients_per_notification,
                        ", ".join(left_out[:20]))  # fmt: skip
        return capped

    def mailbox_of(self, address: str) -> MailboxSettings:
        return self.settings.mailbox_for(address) or self.settings.mailboxes[0]

    def _people(
        self, author: Address, requester: Address, cc: tuple[Address, ...], unreachable: frozenset[str]
    ) -> People:
        agents = self.settings.agents.notify_address
        return People(
            author=author,
            requester=requester,
            cc=cc,
            agents=(Address("", agents),) if agents else (),
            ours=self.settings.our_addresses,
            unreachable=unreachable,
        )

    def _reply_to(self, notification: PlannedMail, mailbox: MailboxSettings, number: str) -> str | None:
        # An agent who simply hits Reply writes to a signed address: that authenticates them.
        if notification.for_agents:
            return self.signer.reply_address(mailbox.address, number, bound_to=notification.to[0].address)
        return None

    def _open_address(self, notification: PlannedMail, mailbox: MailboxSettings) -> str:
        """In every agents' mail: the address that opens a ticket for a customer, bound to the
        address this mail goes to (the agents' list, or the one agent it answers)."""
        if not notification.for_agents:
            return ""
        return self.signer.open_address(mailbox.address, bound_to=notification.to[0].address)

    def _rating_links(self, mailbox: str, ticket: TicketView) -> dict[str, str]:
        """Signed addresses for "helpful" / "not helpful"; the templates word the mailto links."""
        return {
            "rate_yes": self.signer.rating_address(mailbox, ticket.number, ticket.resolutions, helpful=True),
            "rate_no": self.signer.rating_address(mailbox, ticket.number, ticket.resolutions, helpful=False),
        }

    async def _ticket_and_recent(self, ticket_id: int) -> tuple[TicketView, RecentMail]:
        """The ticket, and the mail about it within the window, in one trip. The mails one
        `notify` queues are then added to the window as they are queued (`RecentMail.with_mail`),
        as a second read in the same transaction would find them."""
        since = self.outbox.clock.now() - MUTE_WINDOW  # the clock that stamps the outbox rows counted
        ticket, sent, muted = await self.store.ticket_view_and_mail_since(ticket_id, MUTED_FIELD, since)
        to_address, mails, notices = tally(sent)
        return ticket, RecentMail(to_address, mails, notices, muted)

    def _allowance(self, ticket_id: int, notification: PlannedMail, recent: RecentMail) -> Allowance:
        """Who of this mail's recipients are still within their bounds; the newly muted are
        recorded in the ticket's history (that is how agents are told only once)."""
        now = self.outbox.clock.now()
        recipients = [person.address for person in (*notification.to, *notification.cc)]
        allowance = allow(recipients, recent, self.limits)
        for address in allowance.newly_muted:
            self.store.record_history(ticket_id, MUTED_FIELD, None, address, SYSTEM, now)
        if allowance.muted:
            log.info("ticket %d: %s not sent to %s: past the hourly bound (%d mail(s) about the ticket)",
                     ticket_id, notification.template, ", ".join(allowance.muted), recent.mails)  # fmt: skip
        return allowance

    async def _tell_agents_of_muting(self, ticket_id: int, muted: list[str], trigger_message_id: str | None) -> int:
        """One notice to agents naming the addresses just muted; bounded by its own limit, not
        the agents' address's (the notice must reach them even when that address is muted)."""
        ticket = await self.store.ticket_view(ticket_id)
        mailbox = self.mailbox_of(ticket.mailbox)
        people = self._people(Address("", ""), ticket.requester, ticket.cc, ticket.unreachable)
        planned = plan(Event.NOTIFICATIONS_MUTED, people, copy_participants=False)
        extra = {"muted": muted, "limit": self.limits.per_recipient, "ticket_limit": self.limits.per_ticket}
        for notice in planned:
            reply_to = self._reply_to(notice, mailbox, ticket.number)
            details = Occasion(ticket.message(trigger_message_id), reply_to=reply_to, extra=extra,
                               open_address=self._open_address(notice, mailbox))  # fmt: skip
            self._queue(ticket.id, self.renderer.render(notice, ticket, mailbox, details))
        return len(planned)

    def _queue(self, ticket_id: int | None, mail: OutboundMail) -> OutboundMail:
        # Sent from a return address of its own (VERP): only a report that comes back there
        # is believed (pipeline.py), not one that merely names a ticket or a recipient.
        return_path = self.signer.bounce_address(mail.envelope_from, message_token(mail.message_id))
        mail = replace(mail, envelope_from=return_path)
        self.outbox.add(ticket_id, mail)
        if ticket_id is not None:
            self.store.remember_thread_id(mail.message_id, ticket_id)
        return mail
