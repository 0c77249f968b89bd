"""The running gateway: listener and pipeline worker over one database file.

On start, mail left half-done by a crash goes back to the queue. On SIGTERM or SIGINT the
listener stops accepting, the worker finishes the mail in hand, and the process exits 0;
queued mail waits in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from gateway.clock import Clock, SystemClock
from gateway.database import Database
from gateway.listener import InboundHandler, start_listener
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.relay import Relay
from gateway.render import Renderer
from gateway.settings import Settings
from gateway.spool import Spool

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.stopping = asyncio.Event()
        self._databases: list[Database] = []
        self._server: asyncio.Server | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()  # one writer at a time across our connections

    async def start(self) -> None:
        Renderer(self.settings, self.clock).check()  # before anything opens: fail fast, leave nothing behind
        # A connection each: the listener's and the relay's commits must not land inside a
        # pipeline transaction, and vice versa.
        listener_db = await self._open_database(durable=True)  # 250 waits for the disk
        # The pipeline and the relay work from mail already on disk: after a power cut their
        # last commits may be lost and done again (a notification may then go out twice).
        pipeline_db = await self._open_database(durable=False)
        relay_db = await self._open_database(durable=False)
        self.pipeline = Pipeline(self.settings, pipeline_db, self.clock, self.settings.pipeline.parse_workers)
        await self.pipeline.prepare()
        self.relay = Relay(
            self.settings.outbound,
            Outbox(relay_db, self.clock),
            self.clock,
            local_hostname=self.settings.smtp.hostname,
            poll_seconds=self.settings.pipeline.poll_seconds,
        )
        self.pipeline.on_outbox_changed = self.relay.wakeup.set
        requeued, set_aside = await self.pipeline.spool.recover_interrupted(self.settings.pipeline.max_attempts)
        if requeued or set_aside:
            log.warning("recovered after a crash: %d mail requeued, %d set aside as failed", requeued, set_aside)
        self.handler = InboundHandler(self.settings, Spool(listener_db, self.clock), self.pipeline.wakeup.set)
        self._server = await start_listener(self.settings, self.handler)
        self._workers = [
            asyncio.create_task(self.pipeline.run(self.stopping), name="pipeline"),
            asyncio.create_task(self.relay.run(self.stopping), name="relay"),
            asyncio.create_task(self._close_stale_periodically(), name="auto-close"),
        ]
        log.info(
            "listening on %s:%d (%s), database %s",
            self.settings.smtp.host, self.port, self.settings.smtp.protocol, self.settings.database.path,
        )  # fmt: skip

    async def _open_database(self, durable: bool) -> Database:
        database = await Database.open(self.settings.database.path, self._write_lock, durable)
        self._databases.append(database)
        return database

    async def _close_stale_periodically(self) -> None:
        interval = self.settings.tickets.close_stale_every_minutes * 60
        while not self.stopping.is_set():
            try:
                await self.pipeline.close_stale(self.clock.now())
            except Exception:  # a locked database, say: the next round tries again
                log.exception("auto-close failed; trying again in %g minutes", interval / 60)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=interval)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def drain(self) -> None:
        """Process all queued mail, then try every notification due now (tests wait on this)."""
        await self.pipeline.drain()
        await self.relay.deliver_due()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.stopping.set()
        await asyncio.gather(*self._workers)
        if self._databases:
            await self.pipeline.release()
            self.pipeline.parser.close()
        for database in self._databases:
            await database.close()
        self._databases.clear()


async def serve(settings: Settings) -> None:
    gateway = Gateway(settings)
    await gateway.start()
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shutdown.set)
    await shutdown.wait()
    log.info("shutting down: no new connections, finishing the mail in hand")
    await gateway.stop()
    log.info("stopped")
