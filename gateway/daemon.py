"""The running gateway: the listener, and the processor behind it, over one database file.

`serve` runs the processor and the relay in child processes (see gateway/processor.py).
On SIGTERM or SIGINT the listener stops accepting, the processor finishes the mail in
hand, and the daemon exits 0; queued mail waits in the spool for the next start. Mail
left half-done by a crash goes back to the queue when the processor starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
from pathlib import Path

from gateway.clock import Clock, SystemClock, timestamp
from gateway.desk.pipeline import Pipeline
from gateway.inbound.connections import Listener
from gateway.inbound.imap import start_imap_sources
from gateway.inbound.listener import InboundHandler, start_listener
from gateway.inbound.spool import Spool
from gateway.outbound.relay import Relay
from gateway.outbound.render import Renderer
from gateway.processor import Processor, ProcessorProcess
from gateway.runtime import metrics
from gateway.runtime.state_file import DaemonState, remove_state, state_path, write_state
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.migrations import migrate
from gateway.storage.spool_file import spool_path

log = logging.getLogger(__name__)

# Descriptors the daemon holds besides its SMTP sessions: the database and its journal, the
# children's pipes, the event loop, the temporary files of mail over a megabyte in DATA.
FILES_BESIDES_CONNECTIONS = 64


class Gateway:
    """The listener, with the processor in this process (what tests drive step by step) or,
    with `separate_process`, in a child of its own (what `serve` runs)."""

    def __init__(self, settings: Settings, clock: Clock | None = None, separate_process: bool = False) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.separate_process = separate_process
        self._database: Database | None = None
        self._server: Listener | None = None
        self.processor: Processor | ProcessorProcess | None = None
        self._intake: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        Renderer(self.settings, self.clock).check()  # before anything opens: fail fast, leave nothing behind
        _check_open_file_limit(self.settings)
        # The desk's schema first: an older install's spool moves out into the spool file
        # (migration 5) before the listener adds to it.
        self.settings.database.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(migrate, self.settings.database.path)
        if self.separate_process:
            self.processor = ProcessorProcess(self.settings)
        else:
            self.processor = Processor(self.settings, self.clock)
        try:
            await self.processor.start()
            # The spool file, written by the listener alone (storage/spool_file.py): a 250
            # waits for its commit and fsync (durable), never for a desk transaction.
            self._database = await Database.open(spool_path(self.settings.database.path), durable=True, spool=True)
            spool = Spool(self._database, self.clock)
            self.handler = InboundHandler(self.settings, spool, self.processor.wakeup)
            self._server = await start_listener(self.settings, self.handler)
            self._intake = start_imap_sources(self.settings, spool, self.processor.wakeup)
        except BaseException:  # the port is taken, say: leave no processor behind
            await self.stop()
            raise

    def announce(self) -> None:
        """The line operators and tests wait for: everything `status` reads is in place."""
        log.info(
            "listening on %s:%d (%s), database %s",
            self.settings.smtp.host, self.port, self.settings.smtp.protocol, self.settings.database.path,
        )  # fmt: skip

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def in_process(self) -> Processor:
        assert isinstance(self.processor, Processor), "the processor runs in this process only without separate_process"
        return self.processor

    @property
    def pipeline(self) -> Pipeline:
        return self.in_process.pipeline

    @property
    def relay(self) -> Relay:
        return self.in_process.relay

    async def drain(self) -> None:
        """Process all queued mail, then try every notification due now (tests wait on this)."""
        await self.in_process.drain()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for source in self._intake:  # a message fetched and not yet stored stays in its folder
            source.cancel()
        await asyncio.gather(*self._intake, return_exceptions=True)
        if self.processor is not None:
            await self.processor.stop()
        if self._database is not None:
            await self._database.close()
            self._database = None


def _check_open_file_limit(settings: Settings) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.smtp.max_connections + FILES_BESIDES_CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open-file limit %d is under [smtp] max_connections %d plus %d for the rest: when it runs out, "
            "new connections get 421; raise it (ulimit -n, systemd LimitNOFILE) or lower max_connections",
            soft, settings.smtp.max_connections, FILES_BESIDES_CONNECTIONS,
        )  # fmt: skip


async def serve(settings: Settings) -> None:
    try:  # first: the children count into its directory
        endpoint = metrics.start(settings.metrics.address, settings.database.path)
    except OSError as error:
        raise OSError(error.errno, error.strerror, f"[metrics] listen {settings.metrics.listen}") from None
    gateway = Gateway(settings, separate_process=True)
    state = state_path(settings.database.path)
    # Before anything is announced: a stop that follows "listening on" at once (a monitor,
    # systemd) must find the handler, not SIGTERM's default, which leaves the state file.
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shutdown.set)
    try:
        await gateway.start()
        _record_state(gateway, state, endpoint)
        gateway.announce()
        await shutdown.wait()
        log.info("shutting down: no new connections, the processor finishes the mail in hand")
        await gateway.stop()
    finally:
        remove_state(state)
        if endpoint is not None:
            endpoint.stop()
    log.info("stopped")


def _record_state(gateway: Gateway, path: Path, endpoint: metrics.Endpoint | None) -> None:
    """Write what `status` reads (state_file.py), and again whenever a child is started again."""
    assert isinstance(gateway.processor, ProcessorProcess)
    children = gateway.processor.children
    started_at = timestamp(gateway.clock.now())
    metrics_at = "{}:{}".format(*endpoint.address) if endpoint is not None else ""

    def write() -> None:
        pids = {child.name: child.process.pid for child in children if child.process and child.process.pid}
        state = DaemonState(os.getpid(), gateway.settings.smtp.host, gateway.port, started_at, pids, metrics_at)
        write_state(path, state)

    for child in children:
        child.on_spawn = write
    write()
