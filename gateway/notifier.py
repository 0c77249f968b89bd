"""Turning an event on a ticket into rendered mail in the outbox (the I/O side of notify.py)."""

from __future__ import annotations

from typing import Any

from gateway.notify import Event, People, PlannedMail, plan
from gateway.outbox import OutboundMail, Outbox
from gateway.parse import Address
from gateway.render import Occasion, Renderer
from gateway.settings import MailboxSettings, Settings
from gateway.store import TicketStore, TicketView
from gateway.tickets import Status
from gateway.tokens import Signer


class Notifier:
    """Turns an event on a ticket into rendered mail in the outbox, in the caller's transaction."""

    def __init__(self, settings: Settings, store: TicketStore, outbox: Outbox, renderer: Renderer, signer: Signer):
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.renderer = renderer
        self.signer = signer

    async def notify(
        self,
        ticket_id: int,
        event: Event,
        author: Address,
        trigger_message_id: str | None = None,
        suppress: frozenset[str] = frozenset(),
        **occasion: Any,
    ) -> int:
        """Queue the mail `event` causes, but for templates in `suppress`; `occasion` fills
        `Occasion` (change, attachments, extra…)."""
        ticket = await self.store.ticket_view(ticket_id)
        mailbox = self.mailbox_of(ticket.mailbox)
        people = self._people(author, ticket.requester, ticket.cc, ticket.unreachable)
        change = dict(occasion.pop("change", {}))
        if change.get("status") == Status.RESOLVED:
            change.update(self._rating_links(mailbox.address, ticket))
        planned = plan(event, people, self.settings.outbound.copy_customer_replies_to_participants)
        planned = [notification for notification in planned if notification.template not in suppress]
        for notification in planned:
            reply_to = self._reply_to(notification, mailbox, ticket.number)
            details = Occasion(ticket.message(trigger_message_id), change, reply_to=reply_to, **occasion)
            await self._queue(ticket.id, self.renderer.render(notification, ticket, mailbox, details))
        return len(planned)

    async def notify_without_ticket(self, event: Event, author: Address, mailbox_address: str, **extra: Any) -> int:
        """Mail about no one ticket (the list of a customer's tickets)."""
        mailbox = self.mailbox_of(mailbox_address)
        planned = plan(event, self._people(author, author, (), frozenset()), copy_participants=False)
        for notification in planned:
            await self._queue(None, self.renderer.render(notification, None, mailbox, Occasion(None, extra=extra)))
        return len(planned)

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

    def _rating_links(self, mailbox: str, ticket: TicketView) -> dict[str, str]:
        """Signed addresses for "helpful" / "not helpful"; the templates word the mailto links."""
        return {
            "rate_yes": self.signer.rating_address(mailbox, ticket.number, ticket.resolutions, helpful=True),
            "rate_no": self.signer.rating_address(mailbox, ticket.number, ticket.resolutions, helpful=False),
        }

    async def _queue(self, ticket_id: int | None, mail: OutboundMail) -> None:
        self.outbox.add(ticket_id, mail)
        if ticket_id is not None:
            self.store.remember_thread_id(mail.message_id, ticket_id)
