"""The pipeline worker: spooled mail → parse → route → ticket change, one transaction each.

Guarantee: a spool row ends `done` only in the same transaction that stored its ticket
change, and a mail that cannot be processed ends `failed` with its raw bytes and the
reason; one bad mail never stops the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.clock import Clock, SystemClock
from gateway.desk.actions import Desk
from gateway.desk.decide import Decision, Reading, decide, describe
from gateway.desk.notifications import Notifier
from gateway.desk.queries import TicketQueries
from gateway.desk.route import Clue, route_mail
from gateway.desk.store import TicketStore
from gateway.inbound.spool import DONE, IGNORED, Spool, SpoolEntry
from gateway.model import Address, ParsedMail, TicketRef
from gateway.outbound.outbox import Outbox, ReturnedMail
from gateway.outbound.render import GATEWAY_NAME, Renderer
from gateway.parsing.forwards import Request, attached_message, request_in
from gateway.parsing.limits import check_limits
from gateway.parsing.mail import parse_address
from gateway.parsing.workers import Parser, discard_spilled
from gateway.rules.classify import Context, Verdict, classify
from gateway.rules.commands import Proof
from gateway.rules.signed_addresses import Rating, SignedTag, Signer, is_open_form, looks_signed, plus_tag
from gateway.rules.subject_token import ticket_numbers_in
from gateway.rules.tickets import is_ours, requester_of
from gateway.rules.trust import (
    DnsLookup,
    agent_domains,
    agent_proof,
    dkim_claims,
    signed_address_proves,
    verified_dkim_domains,
)
from gateway.runtime import metrics
from gateway.runtime.logs import collapse_repeats, mail_fields
from gateway.settings import MailboxSettings, Settings
from gateway.storage.database import Database, is_temporary

log = logging.getLogger(__name__)
# Lines that a flood of bad mail or a broken database repeats: at most one a minute each,
# with a count (runtime/logs.py); the one-line "inbound N: failed: reason" stays per mail.
tracebacks = collapse_repeats(logging.getLogger(__name__ + ".tracebacks"))
repeats = collapse_repeats(logging.getLogger(__name__ + ".repeats"))

LOOKAHEAD = 4  # mails claimed and parsing while one is applied...
LOOKAHEAD_BYTES = 8 * 1024 * 1024  # ...unless they are large: then one at a time, for memory


class Pipeline:
    def __init__(self, settings: Settings, database: Database, clock: Clock, parse_workers: int = 0) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.spool = Spool(database, clock)
        self.store = TicketStore(database, settings.tickets.number_prefix)
        self.outbox = Outbox(database, clock)
        self.queries = TicketQueries(database)
        self.renderer = Renderer(settings, clock)
        self.parser = Parser(parse_workers, settings.database.path, settings.our_addresses)
        self.lookahead = LOOKAHEAD if parse_workers else 1
        self._ahead: deque[tuple[SpoolEntry, asyncio.Future[ParsedMail] | None]] = deque()
        self.wakeup = asyncio.Event()
        self.on_outbox_changed: Callable[[], None] = lambda: None  # the daemon wakes the relay
        # One mail at a time per process: drain() waits for the mail the worker has in hand.
        self._in_hand = asyncio.Lock()
        self.dkim_dns: DnsLookup | None = None  # None: real DNS; tests hand in their keys

    async def prepare(self) -> None:
        """Load the signing secret (from the config, else the database's own) and build the desk."""
        secret = self.settings.security.secret.get_secret_value()
        if not secret:
            secret = await self.store.secret(lambda: secrets.token_hex(32))
        self.signer = Signer(secret.encode())
        self.context = Context(
            our_addresses=self.settings.our_addresses,
            loop_marker=GATEWAY_NAME,
            team_address=self.settings.agents.notify_address,
        )
        notifier = Notifier(self.settings, self.store, self.outbox, self.renderer, self.signer)
        self.desk = Desk(self.settings, self.store, self.queries, notifier, self.clock)

    async def run(self, stopping: asyncio.Event) -> None:
        """Process mail until `stopping` is set; the mail in hand is always finished."""
        while not stopping.is_set():
            try:
                worked = await self.process_next()
            except Exception:  # the database itself failed; keep the daemon up and retry
                repeats.exception("pipeline: cannot reach the spool; retrying")
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
            await self._look_ahead()
            if not self._ahead:
                return False
            entry, parsing = self._ahead.popleft()
            await self.process(entry, parsing)
            return True

    async def _look_ahead(self) -> None:
        """Claim and start parsing the next few mails, so the parser works while we apply.
        Claimed is not in hand: no attempt is counted until `process` takes it."""
        while len(self._ahead) < self.lookahead and sum(e.size for e, _ in self._ahead) < LOOKAHEAD_BYTES:
            entry = await self.spool.claim_next()
            if entry is None:
                return
            # A mail that kills a parser worker fails alone (workers.Parser); one that kills
            # the parser in this process kills us, so it is parsed only once in hand and counted.
            self._ahead.append((entry, await self._start_parsing(entry) if self.parser.workers else None))

    async def _start_parsing(self, entry: SpoolEntry) -> asyncio.Future[ParsedMail]:
        # A worker reads the raw mail itself; parsing here needs it read first.
        raw = None if self.parser.workers else await self.spool.raw(entry.id)
        return self.parser.start(entry.id, raw)

    async def release(self) -> None:
        """Give back mail claimed ahead but not processed (at shutdown), uncounted."""
        async with self._in_hand:
            while self._ahead:
                entry, parsing = self._ahead.popleft()
                if parsing is not None:
                    parsing.cancel()
                await self.spool.unclaim(entry.id)

    async def close_stale(self, now: datetime) -> list[str]:
        """Close every ticket resolved `auto_close_hours` before `now`; returns their numbers."""
        before = now - timedelta(hours=self.settings.tickets.auto_close_hours)
        closed = []
        async with self._in_hand:
            for ticket_id in await self.store.stale_resolved(before):
                async with self.database.transaction():
                    if await self.desk.close_stale(ticket_id, now):
                        closed.append((await self.store.ticket_view(ticket_id)).number)
        if closed:
            log.info("auto-closed %d ticket(s) resolved before %s: %s", len(closed), before, ", ".join(closed))
            self.on_outbox_changed()
        return closed

    async def process(self, entry: SpoolEntry, parsing: asyncio.Future[ParsedMail] | None = None) -> None:
        mail: ParsedMail | None = None
        try:
            entry = await self.spool.take_in_hand(entry)  # from here, a crash counts against this mail
            mail = await (parsing or await self._start_parsing(entry))
            check_limits(mail, self.settings.limits)
            dkim_domains = await self._dkim_domains(entry, mail)
            request = self._request(entry, mail)  # text work, so outside the transaction
            async with self.database.transaction():
                status, outcome, decision = await self._apply(entry, mail, dkim_domains, request)
                self.spool.mark_done(entry.id, outcome, status, describe(decision))
        except Exception as error:  # one broad except per unit of work: keep it, say why
            if is_temporary(error):  # busy, locked or full: the same work succeeds later
                await self._retry_later(entry, mail, error)
                return
            log.warning("inbound %d %s: failed: %s", entry.id, _id_of(mail), error,
                        extra=mail_fields(entry.id, mail.message_id if mail else None, f"failed: {error}"))  # fmt: skip
            tracebacks.warning("the traceback of a failed mail (%s)", type(error).__name__, exc_info=True)
            await self.spool.mark_failed(entry.id, f"{type(error).__name__}: {error}")
            metrics.processed(entry.received_at, "failed", str(error))
        else:
            metrics.processed(entry.received_at, status, outcome)
            log.info("inbound %d %s: %s [%s]", entry.id, _id_of(mail), outcome, describe(decision),
                     extra=mail_fields(entry.id, mail.message_id, outcome))  # fmt: skip
            self.on_outbox_changed()
        finally:
            if mail is not None:
                discard_spilled(mail)

    async def _retry_later(self, entry: SpoolEntry, mail: ParsedMail | None, error: Exception) -> None:
        if entry.attempts >= self.settings.pipeline.max_attempts:
            await self.spool.mark_failed(entry.id, f"temporary error, {entry.attempts} attempts: {error}")
            return
        log.warning("inbound %d %s: temporary error, will retry: %s", entry.id, _id_of(mail), error)
        await self.spool.requeue(entry.id)

    async def _apply(
        self, entry: SpoolEntry, mail: ParsedMail, dkim_domains: frozenset[str], request: Request | None = None
    ) -> tuple[str, str, Decision]:
        """Read, decide, act: (spool status, outcome, decision); `request`: what it asks of an open address."""
        verdict = classify(mail, entry.mail_from, self.context)
        reading = await self._read(entry, mail, verdict, dkim_domains, request)
        decision = decide(mail, verdict, reading, self.settings)
        outcome = await self.desk.apply(decision, entry, mail, self._mailbox_of(entry, mail), reading)
        return (IGNORED if decision.ignored else DONE), outcome, decision

    async def _read(
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
        signed = await self._signed_clues(entry, author.address)
        opening = self._opening(entry, author.address)
        route = await route_mail(mail, self.store, signed, opening)
        forged = self._unsigned_address(entry, mail, author) or ""
        reading = Reading(author, route, bool(signed), opening, forged, request=request)
        if forged:
            return replace(reading, forged_ticket=route.ticket or await self._ticket_named_by(forged))
        if route.kind != "reply" or route.ticket is None or verdict.kind != "normal":
            return reading
        return await self._read_ticket(reading, route.ticket, entry, mail, author, dkim_domains)

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
            return replace(reading, view=view, rating=rating, agent_proof=proof)
        signed = any(self.signer.reply_address_verifies(a, ticket.number, author.address) for a in entry.rcpt_tos)
        proof_of_customer = Proof.SIGNED if signed else await self._answered(ticket, mail, author)
        return replace(reading, view=view, rating=rating, signed_reply=signed, customer_proof=proof_of_customer)

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

    def _request(self, entry: SpoolEntry, mail: ParsedMail) -> Request | None:
        """What a mail to an open address asks for (forwards.py); None for any other mail."""
        if not any(is_open_form(recipient) for recipient in entry.rcpt_tos):
            return None
        attached = attached_message(mail)
        inner = attached.content if attached else None
        raw = inner.path.read_bytes() if inner is not None and not isinstance(inner, bytes) else inner
        return request_in(mail, raw)

    async def _dkim_domains(self, entry: SpoolEntry, mail: ParsedMail) -> frozenset[str]:
        """Agents' domains whose DKIM signature on this mail verifies. It asks DNS, so only
        where configured, within [security] dkim_timeout_seconds, outside the transaction,
        and only for a mail that passed every cheap check: an agent's reply to a ticket,
        signed by an agents' domain, not already proven by the signed reply address."""
        security = self.settings.security
        sender = mail.sender.address if mail.sender else ""
        if not security.verify_dkim or not self.settings.agents.is_agent(sender):
            return frozenset()
        wanted = dkim_claims(mail.headers, agent_domains(self.settings.agents, sender))
        if not wanted or classify(mail, entry.mail_from, self.context).kind != "normal":
            return frozenset()
        signed = await self._signed_clues(entry, sender)
        route = await route_mail(mail, self.store, signed)  # read again, in the transaction, by _apply
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
                return await asyncio.to_thread(verified_dkim_domains, raw or b"", wanted, self.dkim_dns, seconds)
        except TimeoutError:
            log.warning("inbound %d %s: DKIM not verified within %ss", entry.id, _id_of(mail), seconds)
            return frozenset()

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


@asynccontextmanager
async def open_pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    """A pipeline over its own database connection, closed on exit."""
    database = await Database.open(settings.database.path)
    try:
        pipeline = Pipeline(settings, database, SystemClock())
        await pipeline.prepare()
        yield pipeline
    finally:
        await database.close()
