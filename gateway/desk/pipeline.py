"""The pipeline worker: spooled mail → parse → classify → read (reading.py) → decide
(decide.py) → apply (actions.py), in one transaction; when mail waits, several mails
share one (a batch), each seeing the changes of those before it.

Guarantee: a spool row ends `done` only in the same transaction that stored its ticket
change, and a mail that cannot be processed ends `failed` with its raw bytes and the
reason; one bad mail never stops the queue, nor fails or sets aside the mails of its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import Clock, SystemClock
from gateway.desk.actions import Desk
from gateway.desk.decide import Decision, decide
from gateway.desk.describe import describe
from gateway.desk.notifications import Notifier
from gateway.desk.queries import TicketQueries
from gateway.desk.reading import Reader
from gateway.desk.store import TicketStore
from gateway.inbound.spool import DONE, IGNORED, Spool, SpoolEntry
from gateway.model import ParsedMail
from gateway.outbound.outbox import Outbox
from gateway.outbound.render import GATEWAY_NAME, Renderer
from gateway.parsing.forwards import Request
from gateway.parsing.limits import check_limits
from gateway.parsing.workers import Parser, discard_spilled
from gateway.rules.classify import Context, classify
from gateway.rules.signed_addresses import Signer
from gateway.rules.trust import DnsLookup
from gateway.runtime import metrics
from gateway.runtime.logs import collapse_repeats, mail_fields
from gateway.settings import Settings
from gateway.storage.database import Database, is_temporary

log = logging.getLogger(__name__)
# Lines that a flood of bad mail or a broken database repeats: at most one a minute each,
# with a count (runtime/logs.py); the one-line "inbound N: failed: reason" stays per mail.
tracebacks = collapse_repeats(logging.getLogger(__name__ + ".tracebacks"))
repeats = collapse_repeats(logging.getLogger(__name__ + ".repeats"))

# When mail waits, parsed, several are applied in one transaction: fewer commits and
# trips a mail. Bounded, since the relay's records and the CLI's changes wait for the
# desk's write lock a transaction holds (the listener's spool commits never do: they go
# to the spool file): at most this many mails, and no more once one has held it this long.
BATCH_MAILS = 8
BATCH_SECONDS = 0.015
LOOKAHEAD = 2 * BATCH_MAILS  # mails claimed and parsing while a batch is applied...
LOOKAHEAD_BYTES = 8 * 1024 * 1024  # ...unless they are large: then one at a time, for memory


@dataclass(frozen=True)
class Prepared:
    """A mail in hand with what was worked out for it before the transaction."""

    entry: SpoolEntry
    mail: ParsedMail
    dkim_domains: frozenset[str]
    request: Request | None


@dataclass(frozen=True)
class Applied:
    mail: Prepared
    status: str
    outcome: str
    decision: Decision


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
        # A batch counts an attempt on each of its mails. A mail counted before goes alone,
        # so after a crash only the mail at fault keeps counting: that needs two attempts
        # at least, else one crash would set aside every mail of its batch.
        self.batch_mails = BATCH_MAILS if parse_workers and settings.pipeline.max_attempts >= 2 else 1
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
        self.reader = Reader(
            self.settings, self.store, self.queries, self.outbox, self.spool, self.signer, self.context, self.clock
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
            if not self._ahead:
                await self._claim_ahead()
            if not self._ahead:
                return False
            await self._process_taken(await self._take_batch())
            return True

    async def _claim_ahead(self) -> None:
        """Claim and start parsing the next few mails, so the parser works while we apply.
        Claimed is not in hand: no attempt is counted until the mail is taken."""
        count, room_bytes = self._room()
        await self._parse_ahead(await self.spool.claim_ahead(count, room_bytes))

    def _room(self) -> tuple[int, int]:
        """How many more mails may be claimed ahead, and in how many bytes."""
        held = sum(entry.size for entry, _ in self._ahead)
        return self.lookahead - len(self._ahead), LOOKAHEAD_BYTES - held

    async def _parse_ahead(self, claimed: list[SpoolEntry]) -> None:
        for entry in claimed:
            # A mail that kills a parser worker fails alone (workers.Parser); one that kills
            # the parser in this process kills us, so it is parsed only once in hand and counted.
            self._ahead.append((entry, await self._start_parsing(entry) if self.parser.workers else None))

    async def _take_batch(self) -> list[tuple[SpoolEntry, asyncio.Future[ParsedMail] | None]]:
        """The next mail and the parsed mails behind it that may share its transaction, taken
        in hand (an attempt counted on each) in the trip that claims as many more ahead."""
        _, parsing = self._ahead[0]
        if parsing is not None:
            await asyncio.wait({parsing})  # its result, or its error, is read in hand
        size = 1
        while size < len(self._ahead) and self._batchable(size):
            size += 1
        batch = [self._ahead[index] for index in range(size)]
        entries = [entry for entry, _ in batch]
        count, room_bytes = self._room()
        taken, claimed = await self.spool.take_in_hand(entries, count + size, room_bytes)
        for _ in range(size):  # only now: on an error they stay ahead, claimed, for the next round
            self._ahead.popleft()
        await self._parse_ahead(claimed)
        return [(entry, parsing) for entry, (_, parsing) in zip(taken, batch, strict=True)]

    def _batchable(self, index: int) -> bool:
        """Whether the mail `index` places behind the next may join its batch: every mail so
        far was never counted (one interrupted before goes alone), and it is parsed without
        error and asks nothing of the desk before the transaction (a DKIM look-up reads the
        desk, which must already hold the changes of the mails before it)."""
        entry, parsing = self._ahead[index]
        return (
            index < self.batch_mails
            and entry.attempts == 0
            and self._ahead[0][0].attempts == 0
            and parsing is not None
            and parsing.done()
            and not parsing.cancelled()
            and parsing.exception() is None
            and not self.reader.may_verify_dkim(parsing.result())
        )

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
        """One claimed mail, alone: taken in hand, applied, finished."""
        [entry], _ = await self.spool.take_in_hand([entry])  # from here, a crash counts against it
        await self._process_taken([(entry, parsing)])

    async def _process_taken(self, batch: list[tuple[SpoolEntry, asyncio.Future[ParsedMail] | None]]) -> None:
        """Mails in hand, in spool order: each worked on outside the transaction, then applied
        in as few transactions as the batch's bounds allow."""
        prepared = [ready for entry, parsing in batch if (ready := await self._prepare(entry, parsing))]
        try:
            remaining = prepared
            while remaining:
                remaining = remaining[await self._apply_some(remaining) :]
        finally:
            for ready in prepared:
                discard_spilled(ready.mail)

    async def _prepare(self, entry: SpoolEntry, parsing: asyncio.Future[ParsedMail] | None) -> Prepared | None:
        """Parse, check, look up DNS and do the text work, all outside the transaction."""
        mail: ParsedMail | None = None
        try:
            mail = await (parsing or await self._start_parsing(entry))
            check_limits(mail, self.settings.limits)
            dkim_domains = await self.reader.dkim_domains(entry, mail, self.dkim_dns)
            return Prepared(entry, mail, dkim_domains, self.reader.request(entry, mail))
        except Exception as error:  # this mail's own failure: kept raw, failed with the reason
            await self._failed(entry, mail, error)
            if mail is not None:
                discard_spilled(mail)
            return None

    async def _apply_some(self, prepared: list[Prepared]) -> int:
        """Apply the first mails of `prepared` in one transaction, in order, each seeing the
        changes of those before it, until the batch's bounds; returns how many were taken."""
        applied: list[Applied] = []
        taken, started = 0, time.monotonic()
        try:
            async with self.database.transaction():
                for ready in prepared:
                    taken += 1
                    done = await self._apply(ready)
                    self.spool.mark_done(ready.entry.id, done.outcome, done.status, describe(done.decision))
                    applied.append(done)
                    if time.monotonic() - started >= BATCH_SECONDS:
                        break
        except Exception as error:  # one broad except per unit of work: nothing of it is stored
            if taken == 1:
                await self._failed(prepared[0].entry, prepared[0].mail, error)
                return 1
            log.info("pipeline: a transaction of %d mails failed (%s); applying each alone", taken, error)
        else:
            self._finished(applied)
            return taken
        # Which mail of the batch was at fault: each alone again, so only that one fails
        # (and, out of the handler, with a traceback of its own).
        for ready in prepared[:taken]:
            await self._apply_some([ready])
        return taken

    def _finished(self, applied: list[Applied]) -> None:
        for done in applied:
            entry, mail = done.mail.entry, done.mail.mail
            metrics.processed(entry.received_at, done.status, done.outcome)
            log.info("inbound %d %s: %s [%s]", entry.id, _id_of(mail), done.outcome, describe(done.decision),
                     extra=mail_fields(entry.id, mail.message_id, done.outcome))  # fmt: skip
        self.on_outbox_changed()

    async def _failed(self, entry: SpoolEntry, mail: ParsedMail | None, error: Exception) -> None:
        if is_temporary(error):  # busy, locked or full: the same work succeeds later
            await self._retry_later(entry, mail, error)
            return
        log.warning("inbound %d %s: failed: %s", entry.id, _id_of(mail), error,
                    extra=mail_fields(entry.id, mail.message_id if mail else None, f"failed: {error}"))  # fmt: skip
        tracebacks.warning("the traceback of a failed mail (%s)", type(error).__name__, exc_info=True)
        await self.spool.mark_failed(entry.id, f"{type(error).__name__}: {error}")
        metrics.processed(entry.received_at, "failed", str(error))

    async def _retry_later(self, entry: SpoolEntry, mail: ParsedMail | None, error: Exception) -> None:
        if entry.attempts >= self.settings.pipeline.max_attempts:
            await self.spool.mark_failed(entry.id, f"temporary error, {entry.attempts} attempts: {error}")
            return
        log.warning("inbound %d %s: temporary error, will retry: %s", entry.id, _id_of(mail), error)
        await self.spool.requeue(entry.id)

    async def _apply(self, ready: Prepared) -> Applied:
        """Read, decide, act, inside the transaction."""
        entry, mail = ready.entry, ready.mail
        verdict = classify(mail, entry.mail_from, self.context)
        reading = await self.reader.read(entry, mail, verdict, ready.dkim_domains, ready.request)
        decision = decide(mail, verdict, reading, self.settings)
        outcome = await self.desk.apply(decision, entry, mail, self.reader.mailbox_of(entry, mail), reading)
        return Applied(ready, IGNORED if decision.ignored else DONE, outcome, decision)


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
