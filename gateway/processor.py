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
import os
import signal
from collections.abc import Callable
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
        if self.outbox_bell is None:
            self.relay = make_relay(self.settings, await self._open_database(), self.clock)
            self.pipeline.on_outbox_changed = self.relay.wakeup.set
        else:
            self.pipeline.on_outbox_changed = self.outbox_bell
        requeued, set_aside = await self.pipeline.spool.recover_interrupted(self.settings.pipeline.max_attempts)
        if requeued or set_aside:
            log.warning("recovered after a crash: %d mail requeued, %d set aside as failed", requeued, set_aside)
        self._tasks = [
            asyncio.create_task(self.pipeline.run(self.stopping), name="pipeline"),
            asyncio.create_task(self._close_stale_periodically(), name="auto-close"),
        ]
        if self.outbox_bell is None:
            self._tasks.append(asyncio.create_task(self.relay.run(self.stopping), name="relay"))

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


def make_relay(settings: Settings, database: Database, clock: Clock) -> Relay:
    return Relay(
        settings.outbound,
        Outbox(database, clock),
        clock,
        local_hostname=settings.smtp.hostname,
        poll_seconds=settings.pipeline.poll_seconds,
    )


class Bell:
    """A pipe that says "look now": rung without ever waiting, many rings answered by one
    look (a bell, not a queue). The daemon keeps both ends open, so a child started again
    hears what rang while it was down, and ringing never fails on a dead child."""

    def __init__(self) -> None:
        self.reader, self.writer = spawn_context().Pipe(duplex=False)
        # Flags of the open pipe, which the children's copies share.
        os.set_blocking(self.reader.fileno(), False)
        os.set_blocking(self.writer.fileno(), False)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def ring(bell: Connection) -> None:
    with contextlib.suppress(BlockingIOError):  # a full pipe rings already
        os.write(bell.fileno(), b"\0")


class ProcessorProcess:
    """What `serve` runs behind the listener, in two child processes: the processor
    (pipeline and auto-close) and the relay, so the relay's SMTP work and the pipeline's
    each have a core's worth of time. The listener rings the processor when mail is
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


class Supervised:
    """A child process, started again (after 1 s, doubling up to 60 s) whenever it dies."""

    def __init__(self, name: str, target: Callable[..., None], args: tuple[object, ...]) -> None:
        self.name = name
        self._target = target
        self._args = args
        self.process: BaseProcess | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}-supervisor")

    def _spawn(self) -> None:
        process = spawn_context().Process(
            target=self._target, args=(*self._args, os.getpid()), name=f"ticket-gateway-{self.name}"
        )
        process.start()
        self.process = process
        log.info("%s started, pid %s", self.name, process.pid)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        delay = FIRST_RESTART_SECONDS
        while True:
            assert self.process is not None
            started = loop.time()
            exitcode = await _exited(self.process)
            if self._stopping.is_set():
                return
            if loop.time() - started >= MAX_RESTART_SECONDS:
                delay = FIRST_RESTART_SECONDS
            log.error("%s exited (%s); its work waits in the database; starting it again in %g s",
                      self.name, exitcode, delay)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return  # stopped while waiting to start again
            delay = min(delay * 2, MAX_RESTART_SECONDS)
            self._spawn()

    async def stop(self) -> None:
        self._stopping.set()
        process, supervisor = self.process, self._supervisor
        if process is None or supervisor is None:
            return
        if process.is_alive():
            process.terminate()  # SIGTERM: it finishes what is in hand and exits
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("%s did not stop within %g s; killing it", self.name, STOP_TIMEOUT_SECONDS)
            process.kill()
            await supervisor
        log.info("%s stopped (%s)", self.name, process.exitcode)


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


def run_processor(settings: Settings, new_mail: Connection, new_outbox: Connection, parent_pid: int) -> None:
    """The processor process's entry point."""
    _begin_child(settings, parent_pid)
    asyncio.run(_serve_processor(settings, new_mail, new_outbox))


async def _serve_processor(settings: Settings, new_mail: Connection, new_outbox: Connection) -> None:
    processor = Processor(settings, SystemClock(), outbox_bell=lambda: ring(new_outbox))
    await processor.start()
    await _until_stopped(new_mail, processor.wakeup)
    await processor.stop()


def run_relay(settings: Settings, new_outbox: Connection, parent_pid: int) -> None:
    """The relay process's entry point."""
    _begin_child(settings, parent_pid)
    asyncio.run(_serve_relay(settings, new_outbox))


async def _serve_relay(settings: Settings, new_outbox: Connection) -> None:
    clock = SystemClock()
    database = await Database.open(settings.database.path, durable=False)  # see Processor.start
    relay = make_relay(settings, database, clock)
    stopping = asyncio.Event()
    delivering = asyncio.create_task(relay.run(stopping), name="relay")
    await _until_stopped(new_outbox, relay.wakeup.set)
    stopping.set()
    await delivering
    await database.close()


def _begin_child(settings: Settings, parent_pid: int) -> None:
    end_with_parent(parent_pid)
    os.nice(PROCESSOR_NICENESS)
    configure_logging(settings.logging.level)


async def _until_stopped(bell: Connection, answer: Callable[[], None]) -> None:
    """Call `answer` each time `bell` rings, until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_reader(bell.fileno(), _answer, bell, answer)
    await stop.wait()
    loop.remove_reader(bell.fileno())


def _answer(bell: Connection, answer: Callable[[], None]) -> None:
    try:
        rung = os.read(bell.fileno(), 4096)  # every ring so far: one look serves them all
    except BlockingIOError:
        return
    if not rung:  # every writer is gone: the daemon is, and the parent watch ends us
        asyncio.get_running_loop().remove_reader(bell.fileno())
        return
    answer()
