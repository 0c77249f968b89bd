"""Everything after the spool: the pipeline, the relay and the auto-close timer.

`serve` runs them in two child processes (`ProcessorProcess`): the processor (pipeline
and auto-close) and the relay, so the listener's event loop does nothing but SMTP and
spool commits, and applying mail and relaying notifications do not take turns on one
core. Tests run all of it in the daemon's process (`Processor`) to drive it step by
step. Either way the steps hand work over only through the database (the spool, the
outbox), and a wake-up just says "look now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from multiprocessing.connection import Connection

from gateway.clock import Clock, SystemClock
from gateway.desk.pipeline import Pipeline
from gateway.outbound.relay import make_relay, run_relay
from gateway.runtime.children import Bell, Supervised, begin_child, ring, until_stopped
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.retention import purge

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 24 * 3600


class Processor:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        write_lock: asyncio.Lock | None = None,
        outbox_bell: Callable[[], None] | None = None,
    ) -> None:
        """`outbox_bell`: rings a relay in another process; without it, the relay runs here."""
        self.settings = settings
        self.clock = clock
        self.outbox_bell = outbox_bell
        # Shared with the listener when in its process: one writer at a time, queued in the loop.
        self._write_lock = write_lock or asyncio.Lock()
        self._databases: list[Database] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        # A connection each: the relay's commits must not land inside a pipeline transaction.
        # Both work from mail already on disk: after a power cut their last commits may be
        # lost and done again (a notification may then go out twice), so they skip the fsync.
        pipeline_db = await self._open_database()
        self.pipeline = Pipeline(self.settings, pipeline_db, self.clock, self.settings.pipeline.parse_workers)
        await self.pipeline.prepare()
        requeued, set_aside = await self.pipeline.spool.recover_interrupted(self.settings.pipeline.max_attempts)
        if requeued or set_aside:
            log.warning("recovered after a crash: %d mail requeued, %d set aside as failed", requeued, set_aside)
        self._tasks = [
            asyncio.create_task(self._close_stale_periodically(), name="auto-close"),
            asyncio.create_task(self._purge_daily(await self._open_database()), name="retention"),
        ]
        if self.outbox_bell is None:
            self.relay = make_relay(self.settings, await self._open_database(), self.clock)
            self.pipeline.on_outbox_changed = self.relay.wakeup.set
            self._tasks.append(asyncio.create_task(self.relay.run(self.stopping), name="relay"))
        else:
            self.pipeline.on_outbox_changed = self.outbox_bell
        self._tasks.append(asyncio.create_task(self.pipeline.run(self.stopping), name="pipeline"))

    async def _open_database(self) -> Database:
        database = await Database.open(self.settings.database.path, self._write_lock, durable=False)
        self._databases.append(database)
        return database

    def wakeup(self) -> None:
        """New mail is in the spool."""
        self.pipeline.wakeup.set()

    async def _close_stale_periodically(self) -> None:
        interval = self.settings.tickets.close_stale_every_minutes * 60
        while not self.stopping.is_set():
            try:
                await self.pipeline.close_stale(self.clock.now())
            except Exception:  # a locked database, say: the next round tries again
                log.exception("auto-close failed; trying again in %g minutes", interval / 60)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=interval)

    async def _purge_daily(self, database: Database) -> None:
        """[retention], once at start and then every day (storage/retention.py)."""
        retention = self.settings.retention
        while not self.stopping.is_set():
            try:
                purged = await purge(database, self.clock.now(), retention.inbound_days,
                                     retention.outbox_days)  # fmt: skip
                if purged.inbound_mail or purged.outbox_mail:
                    log.info("retention: purged %s", purged.as_dict())
            except Exception:  # a locked database, say: tomorrow's round tries again
                log.exception("retention: purge failed; trying again in a day")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=PURGE_EVERY_SECONDS)

    async def drain(self) -> None:
        """Process all queued mail, then try every notification due now (tests wait on this)."""
        await self.pipeline.drain()
        if self.outbox_bell is None:
            await self.relay.deliver_due()

    async def stop(self) -> None:
        """Finish the mail in hand; queued mail waits in the spool for the next start."""
        self.stopping.set()
        await asyncio.gather(*self._tasks)
        if self._databases:
            await self.pipeline.release()
            self.pipeline.parser.close()
        for database in self._databases:
            await database.close()
        self._databases.clear()


class ProcessorProcess:
    """What `serve` runs behind the listener, in two child processes: the processor
    (pipeline and auto-close) and the relay, so applying mail and relaying notifications
    do not take turns in one event loop. The listener rings the processor when mail is
    spooled, the processor rings the relay when notifications are queued."""

    def __init__(self, settings: Settings) -> None:
        self._new_mail, self._new_outbox = Bell(), Bell()
        self.children = (
            Supervised("processor", run_processor, (settings, self._new_mail.reader, self._new_outbox.writer)),
            Supervised("relay", run_relay, (settings, self._new_outbox.reader)),
        )

    async def start(self) -> None:
        for child in self.children:
            await child.start()

    def wakeup(self) -> None:
        """New mail is in the spool."""
        ring(self._new_mail.writer)

    async def stop(self) -> None:
        await asyncio.gather(*(child.stop() for child in self.children))
        self._new_mail.close()
        self._new_outbox.close()


def run_processor(settings: Settings, new_mail: Connection, new_outbox: Connection, parent_pid: int) -> None:
    """The processor process's entry point."""
    begin_child(settings.logging.level, parent_pid, settings.logging.format)
    asyncio.run(_serve_processor(settings, new_mail, new_outbox))


async def _serve_processor(settings: Settings, new_mail: Connection, new_outbox: Connection) -> None:
    processor = Processor(settings, SystemClock(), outbox_bell=lambda: ring(new_outbox))
    await processor.start()
    await until_stopped(new_mail, processor.wakeup)
    await processor.stop()
