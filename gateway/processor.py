"""Everything after the spool: the pipeline, the relay and the auto-close timer.

`serve` runs the processor in a child process of its own (`ProcessorProcess`), so the
listener's event loop does nothing but SMTP and spool commits: parsing, applying,
rendering and relaying never hold up a 250. Tests run it in the daemon's process
(`Processor`) to drive it step by step. Either way it works only from the database:
mail is handed over through the spool, and a wake-up just says "look now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from gateway.clock import Clock, SystemClock
from gateway.database import Database
from gateway.lifeline import end_with_parent, spawn_context
from gateway.logs import configure_logging
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.relay import Relay
from gateway.settings import Settings

log = logging.getLogger(__name__)

FIRST_RESTART_SECONDS = 1.0  # a processor that died is started again after this, doubling...
MAX_RESTART_SECONDS = 60.0  # ...up to this; one that ran this long starts again at once
STOP_TIMEOUT_SECONDS = 60.0  # to finish the mail in hand at shutdown, then it is killed
# When the cores are busy, a sender waiting for 250 goes first; queued mail can wait, and
# the backlog limit (451) stops it from growing without end. Parser workers inherit it.
PROCESSOR_NICENESS = 10


class Processor:
    def __init__(self, settings: Settings, clock: Clock, write_lock: asyncio.Lock | None = None) -> None:
        self.settings = settings
        self.clock = clock
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
        relay_db = await self._open_database()
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
        self._tasks = [
            asyncio.create_task(self.pipeline.run(self.stopping), name="pipeline"),
            asyncio.create_task(self.relay.run(self.stopping), name="relay"),
            asyncio.create_task(self._close_stale_periodically(), name="auto-close"),
        ]

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

    async def drain(self) -> None:
        """Process all queued mail, then try every notification due now (tests wait on this)."""
        await self.pipeline.drain()
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
    """The processor in a child process: woken through a pipe, started again if it dies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._process: BaseProcess | None = None
        self._wakeups: Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="processor-supervisor")

    def _spawn(self) -> None:
        context = spawn_context()
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=run_processor, args=(self.settings, reader, os.getpid()), name="ticket-gateway-processor"
        )
        process.start()
        reader.close()  # the child's now: when it dies, our writes fail instead of filling a pipe
        os.set_blocking(writer.fileno(), False)  # the listener must never wait on the processor
        self._process, self._wakeups = process, writer
        log.info("processor started, pid %s", process.pid)

    def wakeup(self) -> None:
        """New mail is in the spool: a byte down the pipe (the pipe is a bell, not a queue)."""
        if self._wakeups is None:
            return
        # A full pipe already rings; a dead child looks at the spool when it is started again.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wakeups.fileno(), b"\0")

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        delay = FIRST_RESTART_SECONDS
        while True:
            assert self._process is not None
            started = loop.time()
            exitcode = await _exited(self._process)
            if self._stopping.is_set():
                return
            if loop.time() - started >= MAX_RESTART_SECONDS:
                delay = FIRST_RESTART_SECONDS
            log.error("processor exited (%s); mail waits in the spool; starting it again in %g s", exitcode, delay)
            self._hang_up()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return  # stopped while waiting to start again
            delay = min(delay * 2, MAX_RESTART_SECONDS)
            self._spawn()

    def _hang_up(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None

    async def stop(self) -> None:
        self._stopping.set()
        process, supervisor = self._process, self._supervisor
        if process is None or supervisor is None:
            return
        if process.is_alive():
            process.terminate()  # SIGTERM: it finishes the mail in hand and exits
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("processor did not stop within %g s; killing it", STOP_TIMEOUT_SECONDS)
            process.kill()
            await supervisor
        self._hang_up()
        log.info("processor stopped (%s)", process.exitcode)


async def _exited(process: BaseProcess) -> int | None:
    """Wait, in the event loop, for `process` to end; returns its exit code."""
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    loop.add_reader(process.sentinel, ended.set)
    try:
        await ended.wait()
    finally:
        loop.remove_reader(process.sentinel)
    process.join()
    return process.exitcode


def run_processor(settings: Settings, wakeups: Connection, parent_pid: int) -> None:
    """The child process's entry point."""
    end_with_parent(parent_pid)
    os.nice(PROCESSOR_NICENESS)
    configure_logging(settings.logging.level)
    asyncio.run(_serve_processor(settings, wakeups))


async def _serve_processor(settings: Settings, wakeups: Connection) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    processor = Processor(settings, SystemClock())
    await processor.start()
    os.set_blocking(wakeups.fileno(), False)
    loop.add_reader(wakeups.fileno(), _answer_wakeup, wakeups, processor)
    await stop.wait()
    loop.remove_reader(wakeups.fileno())
    await processor.stop()


def _answer_wakeup(wakeups: Connection, processor: Processor) -> None:
    try:
        rung = os.read(wakeups.fileno(), 4096)  # every ring so far: one look at the spool serves them all
    except BlockingIOError:
        return
    if not rung:  # the daemon closed its end: it is going; the parent watch ends us
        asyncio.get_running_loop().remove_reader(wakeups.fileno())
        return
    processor.wakeup()
