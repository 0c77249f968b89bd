"""The pipeline worker: spooled mail → parse → route → ticket change, one transaction each.

Guarantee: a spool row ends `done` only in the same transaction that stored its ticket
change, and a mail that cannot be processed ends `failed` with its raw bytes and the
reason; one bad mail never stops the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from gateway.clock import Clock
from gateway.database import TEMPORARY_ERRORS, Database
from gateway.notify import Event, People, plan
from gateway.outbox import Outbox
from gateway.parse import Address, Attachment, ParsedMail, parse_address, parse_mail
from gateway.render import Occasion, Renderer
from gateway.route import route_mail
from gateway.settings import MailboxSettings, Settings
from gateway.spool import Spool, SpoolEntry
from gateway.store import TicketStore, inbound_message
from gateway.tickets import copied_people, open_ticket, requester_of

log = logging.getLogger(__name__)


class UnprocessableMailError(Exception):
    """A mail that can never become a ticket entry as it is (kept raw, marked failed)."""


class Pipeline:
    def __init__(self, settings: Settings, database: Database, clock: Clock) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.spool = Spool(database, clock)
        self.store = TicketStore(database, settings.tickets.number_prefix)
        self.outbox = Outbox(database, clock)
        self.renderer = Renderer(settings, clock)
        self.wakeup = asyncio.Event()
        self.on_outbox_changed: Callable[[], None] = lambda: None  # the daemon wakes the relay
        # One mail at a time per process: drain() waits for the mail the worker has in hand.
        self._in_hand = asyncio.Lock()

    async def run(self, stopping: asyncio.Event) -> None:
        """Process mail until `stopping` is set; the mail in hand is always finished."""
        while not stopping.is_set():
            try:
                worked = await self.process_next()
            except Exception:  # the database itself failed; keep the daemon up and retry
                log.exception("pipeline: cannot reach the spool; retrying")
                worked = False
            if not worked:
                await self._wait_for_mail(stopping)

    async def _wait_for_mail(self, stopping: asyncio.Event) -> None:
        # Woken by the listener; the poll catches mail spooled by `ingest` in another process.
        self.wakeup.clear()
        waiters = {asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stopping.wait())}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(waiters, timeout=self.settings.pipeline.poll_seconds, return_when="FIRST_COMPLETED")
        for waiter in waiters:
            waiter.cancel()

    async def drain(self) -> None:
        """Process until the spool holds no queued mail."""
        while await self.process_next():
            pass

    async def process_next(self) -> bool:
        async with self._in_hand:
            entry = await self.spool.claim_next()
            if entry is None:
                return False
            await self.process(entry)
            return True

    async def process(self, entry: SpoolEntry) -> None:
        mail: ParsedMail | None = None
        try:
            mail = parse_mail(entry.raw)
            async with self.database.transaction():
                outcome = await self._apply(entry, mail)
                await self.spool.mark_done(entry.id, outcome)
        except TEMPORARY_ERRORS as error:
            await self._retry_later(entry, mail, error)
        except Exception as error:  # one broad except per unit of work: keep it, say why
            log.warning("inbound %d %s: failed: %s", entry.id, _id_of(mail), error, exc_info=True)
            await self.spool.mark_failed(entry.id, f"{type(error).__name__}: {error}")
        else:
            log.info("inbound %d %s: %s", entry.id, _id_of(mail), outcome)
            self.on_outbox_changed()

    async def _retry_later(self, entry: SpoolEntry, mail: ParsedMail | None, error: Exception) -> None:
        if entry.attempts >= self.settings.pipeline.max_attempts:
            await self.spool.mark_failed(entry.id, f"temporary error, {entry.attempts} attempts: {error}")
            return
        log.warning("inbound %d %s: temporary error, will retry: %s", entry.id, _id_of(mail), error)
        await self.spool.requeue(entry.id)

    async def _apply(self, entry: SpoolEntry, mail: ParsedMail) -> str:
        route = await route_mail(mail, self.store)
        if route.kind == "duplicate":
            assert route.ticket is not None
            return f"duplicate ({route.reason}), ticket {route.ticket.number} unchanged"
        author = requester_of(mail, parse_address(entry.mail_from))
        if author is None:
            raise UnprocessableMailError("no sender address: neither a From header nor an envelope sender")
        now = self.clock.now()
        ours = self.settings.our_addresses
        if route.kind == "reply":
            assert route.ticket is not None
            ticket = route.ticket
            await self.store.add_message(ticket.id, entry.id, inbound_message(mail, author), now)
            people = copied_people(mail, ours, exclude=author.address)
            added = await self.store.add_participants(ticket.id, people, "cc", now)
            event, outcome = Event.CUSTOMER_REPLY, f"reply to {ticket.number} by {route.reason}, {added} new cc"
        else:
            mailbox = self._mailbox_of(entry, mail)
            ticket = await self.store.create_ticket(open_ticket(mail, author, mailbox.as_mailbox(), ours), now)
            await self.store.add_message(ticket.id, entry.id, inbound_message(mail, author), now)
            event, outcome = Event.TICKET_CREATED, f"new ticket {ticket.number} in {mailbox.address}"
        queued = await self.notify(ticket.id, event, author.address, mail.message_id)
        return f"{outcome}, {queued} notification(s) queued"

    async def notify(
        self,
        ticket_id: int,
        event: Event,
        author: str,
        trigger_message_id: str | None,
        change: dict[str, Any] | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> int:
        """Render and queue the mail an event causes, inside the caller's transaction."""
        ticket = await self.store.ticket_view(ticket_id)
        mailbox = self.settings.mailbox_for(ticket.mailbox) or self.settings.mailboxes[0]
        agents = self.settings.agents.notify_address
        people = People(
            requester=ticket.requester,
            cc=ticket.cc,
            agents=(Address("", agents),) if agents else (),
            ours=self.settings.our_addresses,
            unreachable=ticket.unreachable,
        )
        occasion = Occasion(ticket.message(trigger_message_id), change or {}, attachments)
        planned = plan(event, people, author, self.settings.outbound.copy_customer_replies_to_participants)
        for notification in planned:
            mail = self.renderer.render(notification, ticket, mailbox, occasion)
            await self.outbox.add(ticket.id, mail)
            await self.store.remember_thread_id(mail.message_id, ticket.id)
        return len(planned)

    def _mailbox_of(self, entry: SpoolEntry, mail: ParsedMail) -> MailboxSettings:
        """The mailbox the mail was delivered to; the headers decide when the envelope cannot."""
        header_addresses = [person.address for person in (*mail.to, *mail.cc)]
        for address in (*entry.rcpt_tos, *header_addresses):
            mailbox = self.settings.mailbox_for(address)
            if mailbox is not None:
                return mailbox
        return self.settings.mailboxes[0]


def _id_of(mail: ParsedMail | None) -> str:
    return f"<{mail.message_id}>" if mail and mail.message_id else "<no Message-ID>"
