"""Child processes of `serve`: started again when they die, woken through pipes.

A `Bell` is a pipe that says "look now"; `Supervised` starts a process again (after 1 s,
doubling up to 60 s) whenever it dies; `begin_child` and `until_stopped` are what every
child does first and then until SIGTERM. This module imports no step of the pipeline, so
a child that needs only the relay loads only the relay.
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

from gateway.runtime import metrics
from gateway.runtime.lifeline import end_with_parent, spawn_context
from gateway.runtime.logs import configure_logging

log = logging.getLogger(__name__)

FIRST_RESTART_SECONDS = 1.0  # a child that died is started again after this, doubling...
MAX_RESTART_SECONDS = 60.0  # ...up to this; one that ran this long starts again at once
STOP_TIMEOUT_SECONDS = 60.0  # to finish the work in hand at shutdown, then it is killed
# When the cores are busy, a sender waiting for 250 goes first; queued mail can wait, and
# the backlog limit (451) stops it from growing without end. Parser workers inherit it.
CHILD_NICENESS = 10


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


class Supervised:
    """A child process, started again (after 1 s, doubling up to 60 s) whenever it dies."""

    def __init__(self, name: str, target: Callable[..., None], args: tuple[object, ...]) -> None:
        self.name = name
        self._target = target
        self._args = args
        self.process: BaseProcess | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.on_spawn: Callable[[], None] = lambda: None  # the daemon records the new pid (status)

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
        self.on_spawn()

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


def begin_child(log_level: str, parent_pid: int, log_format: str = "text") -> None:
    """First thing in a child: end with the daemon, yield the CPU to it, log and count as it does."""
    end_with_parent(parent_pid)
    os.nice(CHILD_NICENESS)
    configure_logging(log_level, log_format)
    metrics.enable_in_child()


async def until_stopped(bell: Connection, answer: Callable[[], None]) -> None:
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
