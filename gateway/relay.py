"""Deliver the outbox through the relay (aiosmtplib): the only module that sends mail.

A 2xx is `sent` (with the relay's answer); a 4xx, a refused connection or a time-out is
retried with exponential backoff until `give_up_hours` after the mail was queued; a 5xx
is `failed` with the relay's words. While the relay is unreachable, delivery pauses (with
the same backoff) instead of trying every queued mail in turn; "relay unreachable" is
logged once per outage. `serve` runs it in a process of its own (`run_relay`), which loads
nothing of parsing, tickets or rendering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection

import aiosmtplib

from gateway.children import begin_child, until_stopped
from gateway.clock import Clock, SystemClock
from gateway.database import Database
from gateway.outbox import Outbox, OutboxEntry
from gateway.settings import OutboundSettings, Settings

log = logging.getLogger(__name__)

BATCH = 50  # due mail taken per look at the outbox


@dataclass(frozen=True)
class Delivery:
    """How one attempt ended: sent, retry (temporary) or failed (permanent)."""

    outcome: str
    reply: str
    connection_failed: bool = False


class Relay:
    def __init__(
        self, settings: OutboundSettings, outbox: Outbox, clock: Clock, local_hostname: str, poll_seconds: float
    ) -> None:
        self.settings = settings
        # Look again at least this often: mail queued by `ingest` in another process.
        self.poll_seconds = poll_seconds
        self.outbox = outbox
        self.clock = clock
        self.local_hostname = local_hostname
        self.wakeup = asyncio.Event()
        self._connection_failures = 0  # in a row: the outage's length, for the pause
        self._paused_until: datetime | None = None
        # One delivery round at a time: drain() must not send what the worker is sending.
        self._round = asyncio.Lock()
        self._connection: aiosmtplib.SMTP | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.deliver_due()
            except Exception:  # the database failed; keep the daemon up and try again
                log.exception("outbox: cannot read the outbox; retrying")
            await self._wait(stopping)

    async def _wait(self, stopping: asyncio.Event) -> None:
        self.wakeup.clear()
        waiters = {asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stopping.wait())}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(waiters, timeout=await self._seconds_to_next_due(), return_when="FIRST_COMPLETED")
        for waiter in waiters:
            waiter.cancel()

    async def _seconds_to_next_due(self) -> float:
        next_due = await self.outbox.next_due_at()
        if next_due is None:
            return self.poll_seconds
        wake_at = datetime.fromisoformat(next_due)
        if self._paused_until is not None:
            wake_at = max(wake_at, self._paused_until)
        seconds = (wake_at - self.clock.now()).total_seconds()
        return min(max(seconds, 0.0), self.poll_seconds)

    def _paused(self) -> bool:
        return self._paused_until is not None and self.clock.now() < self._paused_until

    async def deliver_due(self) -> int:
        """Try every mail due now once, unless the relay is down; returns how many were tried.
        One connection carries the whole round (a new one after any failure)."""
        tried = 0
        async with self._round:
            self._connection = None
            try:
                while not self._paused() and (entries := await self.outbox.due(BATCH)):
                    for entry in entries:
                        if self._paused():
                            break
                        await self._deliver(entry)
                        tried += 1
            finally:
                await self._hang_up()
        return tried

    async def _deliver(self, entry: OutboxEntry) -> None:
        delivery = await self._attempt(entry)
        self._note_reachability(delivery)
        if delivery.outcome == "sent":
            await self.outbox.mark_sent(entry.id, delivery.reply)
            log.info("outbox %d: sent to %s: %s", entry.id, ", ".join(entry.recipients), delivery.reply)
        elif delivery.outcome == "failed":
            await self.outbox.mark_failed(entry.id, delivery.reply)
            log.warning("outbox %d: failed for good: %s", entry.id, delivery.reply)
        else:
            await self._retry_or_give_up(entry, delivery)

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
        if not delivery.connection_failed:
            log.info("outbox %d: temporary failure, retry at %s: %s", entry.id, next_attempt, delivery.reply)

    def backoff_seconds(self, attempts: int) -> float:
        """Delay after the n-th failed attempt: first_retry, doubling, capped."""
        delay: float = self.settings.first_retry_seconds * 2 ** (attempts - 1)
        return min(delay, self.settings.max_retry_seconds)

    def _note_reachability(self, delivery: Delivery) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        if delivery.connection_failed:
            self._connection_failures += 1
            pause = timedelta(seconds=self.backoff_seconds(self._connection_failures))
            self._paused_until = self.clock.now() + pause
            if self._connection_failures == 1:
                log.warning("relay %s unreachable (%s); mail stays queued and is retried", where, delivery.reply)
        elif self._connection_failures:
            self._connection_failures = 0
            self._paused_until = None
            log.info("relay %s reachable again", where)

    async def _attempt(self, entry: OutboxEntry) -> Delivery:
        try:
            connection = await self._connected()
            refused, answer = await connection.sendmail(entry.envelope_from, list(entry.recipients), entry.raw)
        except aiosmtplib.SMTPRecipientsRefused as error:  # every recipient refused
            await self._hang_up()
            codes = [refusal.code for refusal in error.recipients]
            reply = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
            return Delivery("failed" if all(code >= 500 for code in codes) else "retry", reply)
        except aiosmtplib.SMTPResponseException as error:
            await self._hang_up()
            return Delivery("failed" if error.code >= 500 else "retry", f"{error.code} {error.message}")
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as error:
            await self._hang_up()
            return Delivery("retry", f"connection failed: {error}", connection_failed=True)
        except (aiosmtplib.SMTPException, OSError) as error:  # e.g. no STARTTLS: an admin can fix it
            await self._hang_up()
            return Delivery("retry", f"{type(error).__name__}: {error}", connection_failed=True)
        reply = answer.strip()
        if refused:  # some recipients refused, the rest accepted: it is sent; say who not
            reply += " (refused: " + "; ".join(f"{a}: {r.code} {r.message}" for a, r in refused.items()) + ")"
        return Delivery("sent", reply)

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._connection is not None and self._connection.is_connected:
            return self._connection
        settings = self.settings
        self._connection = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username or None,
            password=settings.password.get_secret_value() or None,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            timeout=settings.timeout_seconds,
            local_hostname=self.local_hostname,
        )
        await self._connection.connect()
        return self._connection

    async def _hang_up(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_connected:
            try:
                await connection.quit()
            except (aiosmtplib.SMTPException, OSError):  # it is going away either way
                connection.close()


def make_relay(settings: Settings, database: Database, clock: Clock) -> Relay:
    return Relay(
        settings.outbound,
        Outbox(database, clock),
        clock,
        local_hostname=settings.smtp.hostname,
        poll_seconds=settings.pipeline.poll_seconds,
    )


def run_relay(settings: Settings, new_outbox: Connection, parent_pid: int) -> None:
    """The relay process's entry point."""
    begin_child(settings.logging.level, parent_pid)
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
