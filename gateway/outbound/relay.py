"""Deliver the outbox through the relay: the loop that decides what to send and when.

A 2xx is `sent` (see delivery.py for how an attempt is judged); a 4xx or a time-out is
retried with exponential backoff until `give_up_hours` after the mail was queued; a 5xx is
`failed` with the relay's words. What the relay accepted is written to the relay's own
sent log (sent_log.py) before anything else, and folded into the outbox after the round, so
a delivery never waits for the desk's write lock after a 250.

While the relay is unreachable, delivery pauses instead of trying every queued mail in
turn, and the relay is probed every `probe_seconds` (one mail is the probe; no attempt is
counted against it), so the backlog goes out as soon as the relay answers, however long the
outage. "relay unreachable" is logged once per outage. `serve` runs this in a process of
its own (`run_relay`), which loads nothing of parsing, tickets or rendering.

The session with the relay outlives a round: the processor rings once a processed mail, a
round or two a second under load, and a session a round would cost more than the mail it
carries. It ends once it has carried nothing for `SESSION_IDLE_SECONDS` (delivery.py bounds
the mails it carries), and at the end of `deliver_due`, which tests and `drain` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from multiprocessing.connection import Connection

from gateway.clock import Clock, SystemClock, timestamp
from gateway.outbound.delivery import FAILED, SENT, Delivery, RelayConnection
from gateway.outbound.outbox import Outbox, OutboxEntry
from gateway.outbound.sent_log import SentLog
from gateway.runtime import metrics
from gateway.runtime.children import begin_child, until_stopped
from gateway.runtime.logs import collapse_repeats
from gateway.settings import OutboundSettings, Settings
from gateway.storage.database import Database

log = logging.getLogger(__name__)
repeats = collapse_repeats(logging.getLogger(__name__ + ".repeats"))  # at most one a minute, counted (runtime/logs.py)

BATCH = 50  # due mail taken per look at the outbox
# As Postfix's smtp_connection_cache_time_limit (2s): long enough for the next round under
# load, short enough to hold nothing of the relay's while the desk is quiet.
SESSION_IDLE_SECONDS = 2.0


class Relay:
    def __init__(
        self,
        settings: OutboundSettings,
        outbox: Outbox,
        sent_log: SentLog,
        clock: Clock,
        local_hostname: str,
        poll_seconds: float,
    ) -> None:
        self.settings = settings
        # Look again at least this often: mail queued by `ingest` in another process.
        self.poll_seconds = poll_seconds
        self.outbox = outbox
        self.sent_log = sent_log
        self.clock = clock
        self.connection = RelayConnection(settings, local_hostname)
        self.session_idle_seconds = SESSION_IDLE_SECONDS
        self.wakeup = asyncio.Event()
        self._down_since: datetime | None = None  # the relay did not answer our last try
        self._next_probe_at: datetime | None = None
        self._flush_seen: str | None = None  # the last `outbox retry` this relay answered
        # One delivery round at a time: drain() must not send what the worker is sending.
        self._round = asyncio.Lock()

    async def run(self, stopping: asyncio.Event) -> None:
        async with self.sent_log.held(stopping) as held:
            try:
                while held and not stopping.is_set():
                    try:
                        async with self._round:
                            await self._send_due()
                            await self._reconcile()
                    except Exception:  # the database failed; keep the daemon up and try again
                        repeats.exception("outbox: cannot read the outbox; retrying")
                    await self._wait(stopping)
            finally:
                await self.connection.hang_up()

    async def _wait(self, stopping: asyncio.Event) -> None:
        self.wakeup.clear()
        seconds = await self._seconds_to_next_due()
        if self.connection.is_open:
            idle_left = self.session_idle_seconds - self.connection.idle_seconds()
            if idle_left <= 0:
                await self.connection.hang_up()
            else:
                seconds = min(seconds, idle_left)  # to end the session in time
        waiters = {asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stopping.wait())}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(waiters, timeout=seconds, return_when="FIRST_COMPLETED")
        for waiter in waiters:
            waiter.cancel()

    async def _seconds_to_next_due(self) -> float:
        next_due = await self.outbox.next_due_at()
        if next_due is None:
            return self.poll_seconds
        wake_at = datetime.fromisoformat(next_due)
        if self._next_probe_at is not None:
            wake_at = max(wake_at, self._next_probe_at)
        seconds = (wake_at - self.clock.now()).total_seconds()
        return min(max(seconds, 0.0), self.poll_seconds)

    def _paused(self) -> bool:
        return self._next_probe_at is not None and self.clock.now() < self._next_probe_at

    async def deliver_due(self) -> int:
        """Try every mail due now once, unless the relay is down and not yet to be probed
        again, then end the session; returns how many were tried."""
        async with self._round:
            try:
                tried = await self._send_due()
            finally:
                await self.connection.hang_up()
            await self._reconcile()
        return tried

    async def _send_due(self) -> int:
        """One round: every mail due now, over the session kept from the last round."""
        tried = 0
        await self._reconcile()  # first what a relay killed after a 250 never recorded
        if (flush := await self.outbox.flush_requested_at()) != self._flush_seen:
            self._flush_seen, self._next_probe_at = flush, None  # `outbox retry`: try now, probe or not
        more = True
        while more and not self._paused():
            entries = await self.outbox.due(BATCH, self.sent_log.pending)
            more = len(entries) == BATCH  # else that was all; what comes due meanwhile, _wait sees
            for entry in entries:
                if self._paused():
                    break
                await self._deliver(entry)
                tried += 1
        return tried

    async def _reconcile(self) -> None:
        """Fold the sent log into the outbox; until that commits, the log keeps it all."""
        if self.sent_log.pending:
            records = list(self.sent_log.pending.values())
            await self.outbox.record_sent(records)
            self.sent_log.forget([record.outbox_id for record in records])

    async def _deliver(self, entry: OutboxEntry) -> None:
        delivery = await self.connection.send(entry.envelope_from, entry.recipients, entry.raw)
        if delivery.outcome == SENT:  # first of all, before any await: see sent_log.py
            self.sent_log.record(entry.id, entry.message_id, timestamp(self.clock.now()), delivery.reply)
            log.info("outbox %d: sent to %s: %s", entry.id, ", ".join(entry.recipients), delivery.reply)
        elif delivery.connection_failed:  # the relay's fault, not this mail's
            await self.outbox.note_unreachable(entry.id, delivery.reply)
        elif delivery.outcome == FAILED:
            await self.outbox.mark_failed(entry.id, delivery.reply)
            log.warning("outbox %d: failed for good: %s", entry.id, delivery.reply)
        else:
            await self._retry_or_give_up(entry, delivery)
        metrics.notification(delivery.outcome)
        await self._note_reachability(delivery)

    async def _retry_or_give_up(self, entry: OutboxEntry, delivery: Delivery) -> None:
        now = self.clock.now()
        give_up_at = datetime.fromisoformat(entry.created_at) + timedelta(hours=self.settings.give_up_hours)
        attempts = entry.attempts + 1
        next_attempt = now + timedelta(seconds=self.backoff_seconds(attempts))
        if next_attempt > give_up_at or attempts >= self.settings.max_attempts:
            reason = f"gave up after {attempts} attempts (max_attempts {self.settings.max_attempts},"
            reason += f" give_up_hours {self.settings.give_up_hours:g}): "
            await self.outbox.mark_failed(entry.id, reason + delivery.reply)
            log.warning("outbox %d: %s%s", entry.id, reason, delivery.reply)
            return
        await self.outbox.mark_retry(entry.id, next_attempt, delivery.reply)
        log.info("outbox %d: temporary failure, retry at %s: %s", entry.id, next_attempt, delivery.reply)

    def backoff_seconds(self, attempts: int) -> float:
        """Delay after the n-th failed attempt: first_retry, doubling, capped."""
        delay: float = self.settings.first_retry_seconds * 2 ** (attempts - 1)
        return min(delay, self.settings.max_retry_seconds)

    async def _note_reachability(self, delivery: Delivery) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        now = self.clock.now()
        if delivery.connection_failed:
            # A fixed, short interval, not a growing one: an outage must not be followed by
            # as long a wait again. One connection attempt per probe costs the relay nothing.
            self._next_probe_at = now + timedelta(seconds=self.settings.probe_seconds)
            if self._down_since is None:
                self._down_since = now
                log.warning("relay %s unreachable (%s); mail stays queued, probing every %gs",
                            where, delivery.reply, self.settings.probe_seconds)  # fmt: skip
            await self._give_up_expired(delivery.reply)
        elif self._down_since is not None:
            log.info("relay %s reachable again after %s; sending the backlog", where, now - self._down_since)
            self._down_since = self._next_probe_at = None

    async def _give_up_expired(self, reply: str) -> None:
        """While the relay is down, mail past give_up_hours fails as it would after a try."""
        cutoff = self.clock.now() - timedelta(hours=self.settings.give_up_hours)
        reason = f"gave up: the relay unreachable past give_up_hours {self.settings.give_up_hours:g}: {reply}"
        if given_up := await self.outbox.give_up_queued_before(cutoff, self.sent_log.pending, reason):
            log.warning("outbox: %d mail given up, the relay unreachable past give_up_hours", given_up)


def make_relay(settings: Settings, database: Database, clock: Clock) -> Relay:
    sent_log = SentLog(settings.database.path.with_name(settings.database.path.name + ".relay-sent"))
    return Relay(
        settings.outbound,
        Outbox(database, clock),
        sent_log,
        clock,
        local_hostname=settings.smtp.hostname,
        poll_seconds=settings.pipeline.poll_seconds,
    )


def run_relay(settings: Settings, new_outbox: Connection, parent_pid: int) -> None:
    """The relay process's entry point."""
    begin_child(settings.logging.level, parent_pid, settings.logging.format)
    asyncio.run(_serve_relay(settings, new_outbox))


async def _serve_relay(settings: Settings, new_outbox: Connection) -> None:
    clock = SystemClock()
    database = await Database.open(settings.database.path, durable=False)  # see Processor.start (processor.py)
    relay = make_relay(settings, database, clock)
    stopping = asyncio.Event()
    delivering = asyncio.create_task(relay.run(stopping), name="relay")
    await until_stopped(new_outbox, relay.wakeup.set)
    stopping.set()
    await delivering
    await database.close()
