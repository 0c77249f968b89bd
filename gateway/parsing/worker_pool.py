"""Worker processes fed spool ids through pipes of their own, read by the event loop itself.

Its guarantee: every call's future completes, with the worker's result, its exception, or
`ParseError` once a worker died twice on that call. A worker takes its calls in order, so
when it dies only the first of its queue was in hand: that one is tried once more, the
ones queued behind it are sent to another worker uncounted (a mail that kills a worker
fails alone). Workers exit when this process does (runtime/lifeline.py), or when their
request pipe closes.

concurrent.futures' ProcessPoolExecutor is not used: its management thread and its call
queue's feeder thread each take the GIL from the event loop on every call, 0.3-0.4 ms of
this process's CPU a call against 0.05 ms here (`python -m bench.parse --pool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import struct
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Generic, TypeVar

from gateway.parsing.mail import ParseError
from gateway.runtime.lifeline import end_with_parent, spawn_context

T = TypeVar("T")
REQUEST = struct.Struct("!q")  # a spool id: 8 bytes, under PIPE_BUF, so written whole
LENGTH = struct.Struct("!Q")  # before each pickled reply
READ_BYTES = 1 << 16  # a pipe's default capacity on Linux


@dataclass
class _Call(Generic[T]):
    spool_id: int
    future: asyncio.Future[T]
    attempts: int = 1


class WorkerPool(Generic[T]):
    """`size` spawned processes that each run `work(spool_id)` (a picklable callable)."""

    def __init__(self, size: int, work: Callable[[int], T]) -> None:
        self.size = size
        self.work = work
        self._workers: list[_Worker[T]] = []

    def submit(self, spool_id: int) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._send(_Call(spool_id, future))
        return future

    def _send(self, call: _Call[T]) -> None:
        self._workers = [worker for worker in self._workers if worker.alive]
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self))
        min(self._workers, key=lambda worker: len(worker.calls)).send(call)

    def redo(self, call: _Call[T], in_hand: bool) -> None:
        """A call of a worker that died: again, counted when it was the one in hand."""
        if call.future.done():  # cancelled meanwhile
            return
        if in_hand and call.attempts >= 2:
            call.future.set_exception(ParseError("the parser process died twice on this mail"))
            return
        call.attempts += in_hand
        self._send(call)

    def close(self) -> None:
        """End the workers (each after the call in hand) and cancel what they had not done."""
        for worker in self._workers:
            worker.close()
        self._workers = []


class _Worker(Generic[T]):
    def __init__(self, pool: WorkerPool[T]) -> None:
        context = spawn_context()
        requests_reader, requests_writer = context.Pipe(duplex=False)
        replies_reader, replies_writer = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve, args=(pool.work, requests_reader, replies_writer, os.getpid()), name="parser"
        )
        self.process.start()
        requests_reader.close()  # the child's ends: once it exits, reading its replies gives EOF
        replies_writer.close()
        self.pool = pool
        self.requests, self.replies = requests_writer, replies_reader
        self.calls: deque[_Call[T]] = deque()
        self.alive = True
        self._buffer = bytearray()
        os.set_blocking(replies_reader.fileno(), False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(replies_reader.fileno(), self._readable)

    def send(self, call: _Call[T]) -> None:
        self.calls.append(call)
        with contextlib.suppress(OSError):  # the worker is gone: the EOF of its replies redoes its calls
            os.write(self.requests.fileno(), REQUEST.pack(call.spool_id))

    def _readable(self) -> None:
        try:
            data = os.read(self.replies.fileno(), READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._died()
            return
        self._buffer += data
        while len(self._buffer) >= LENGTH.size:
            (size,) = LENGTH.unpack_from(self._buffer)
            if len(self._buffer) < LENGTH.size + size:
                return
            payload = bytes(self._buffer[LENGTH.size : LENGTH.size + size])
            del self._buffer[: LENGTH.size + size]
            self._answer(self.calls.popleft(), payload)

    def _answer(self, call: _Call[T], payload: bytes) -> None:
        if call.future.done():  # cancelled: a claimed mail given back at shutdown
            return
        try:
            ok, value = pickle.loads(payload)
        except Exception as error:  # a result that cannot be read is that mail's failure alone
            ok, value = False, ParseError(f"the parser's answer cannot be read: {error!r}")
        if ok:
            call.future.set_result(value)
        else:
            call.future.set_exception(value)

    def _died(self) -> None:
        self._end()
        self.process.join(1.0)  # its replies' EOF: the process is exiting; reap it
        calls, self.calls = list(self.calls), deque()
        for index, call in enumerate(calls):
            self.pool.redo(call, in_hand=index == 0)

    def _end(self) -> None:
        if self.alive:
            self.alive = False
            self.loop.remove_reader(self.replies.fileno())
            self.requests.close()
            self.replies.close()

    def close(self) -> None:
        self._end()  # the worker reads EOF once done with the call in hand, and exits
        self.process.join()
        for call in self.calls:
            call.future.cancel()
        self.calls.clear()


def _serve(work: Callable[[int], object], requests: Connection, replies: Connection, parent_pid: int) -> None:
    """A worker's life: read a spool id, write back the pickled (ok, result or exception)."""
    # Ctrl-C reaches the whole process group; the parent's shutdown ends the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent(parent_pid)
    while (spool_id := _read_request(requests.fileno())) is not None:
        reply = _reply(work, spool_id)
        try:
            _write_all(replies.fileno(), LENGTH.pack(len(reply)) + reply)
        except BrokenPipeError:  # the parent is gone
            return


def _reply(work: Callable[[int], object], spool_id: int) -> bytes:
    try:
        return pickle.dumps((True, work(spool_id)), pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # the mail's failure, reported to the parent as it is
        error.add_note("in the parser worker:\n" + "".join(traceback.format_exception(error)))
        try:
            reply = pickle.dumps((False, error), pickle.HIGHEST_PROTOCOL)
            pickle.loads(reply)  # some exceptions pickle but cannot be rebuilt from their args
        except Exception:
            reply = pickle.dumps((False, ParseError(f"{type(error).__name__}: {error}")), pickle.HIGHEST_PROTOCOL)
        return reply


def _read_request(descriptor: int) -> int | None:
    data = b""
    while len(data) < REQUEST.size:
        chunk = os.read(descriptor, REQUEST.size - len(data))
        if not chunk:
            return None  # the parent closed the pool, or is gone
        data += chunk
    (spool_id,) = REQUEST.unpack(data)
    return int(spool_id)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
