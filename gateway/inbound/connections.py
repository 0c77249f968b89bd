"""Accepting connections: bounded in all and per client address, calm when the OS runs out.

Guarantees: at most `[smtp] max_connections` sessions at once, and at most
`max_connections_per_client` from one address; a connection past either hears
`421 4.7.0 Too many connections, try again later` at once and is closed (RFC 5321 §3.8: a
server may refuse with 421 and close; the sending MTA retries later). When the process is out
of file descriptors (EMFILE/ENFILE), the waiting connection still gets that 421 (a spare
descriptor is kept for it) and accepting pauses briefly, logged once a minute.

Our own accept loop, not `loop.create_server`'s: asyncio's (CPython 3.11
`selector_events._accept_connection`) goes on calling accept() after EMFILE, logging a
traceback each time, and 1,100 idle connections made it write ~48,000 in a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable

from gateway.runtime.logs import collapse_repeats

# Only lines that repeat under a flood go to this logger: at most one a minute per kind.
log = collapse_repeats(logging.getLogger(__name__))

TOO_MANY_CONNECTIONS = b"421 4.7.0 Too many connections, try again later\r\n"
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_PAUSE_SECONDS = 0.1  # after the OS refused to accept: long enough not to spin
LISTEN_BACKLOG = 511  # as nginx and Redis: room for a burst while we refuse the excess

# Makes the protocol for one accepted connection; it must call the given callback once,
# when that connection is lost (the slot it holds is then free).
ProtocolFactory = Callable[[Callable[[], None]], asyncio.Protocol]


class ConnectionLimits:
    """The sessions open now, in all and per client address."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open: Counter[str] = Counter()

    def refusal(self, address: str) -> str | None:
        """Why a new connection from `address` is refused, or None."""
        if self.open.total() >= self.total:
            return f"{self.total} connections open"
        if self.open[address] >= self.per_client:
            return f"{self.per_client} connections open from that address"
        return None

    def opened(self, address: str) -> Callable[[], None]:
        """Count a connection from `address`; returns what to call once it is lost."""
        self.open[address] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open[address] -= 1
                if not self.open[address]:
                    del self.open[address]

        return release


class Listener:
    """The listening sockets and their accept loops (in place of asyncio.Server: see the module docstring)."""

    def __init__(self, sockets: list[socket.socket], factory: ProtocolFactory, limits: ConnectionLimits) -> None:
        self.sockets = sockets
        self.factory = factory
        self.limits = limits
        self._spare: int | None = _spare_descriptor()
        self._tasks = [asyncio.create_task(self._accept_loop(sock)) for sock in sockets]

    def close(self) -> None:
        """Stop accepting; sessions already open carry on."""
        for task, sock in zip(self._tasks, self.sockets, strict=True):
            task.cancel()
            # Once the loop has let go of the socket: closing it under a pending accept could
            # let another file reuse its number while still registered with the selector.
            task.add_done_callback(functools.partial(_close_after, sock))
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as error:
                if error.errno not in OUT_OF_RESOURCES:
                    # The client gave up before we took it (ECONNABORTED and kin): nothing to do.
                    log.info("accept failed: %s", error)
                    continue
                log.error("cannot accept connections: %s; new connections get 421 for now", error.strerror)
                self._refuse_waiting_with_spare(sock)
                await asyncio.sleep(ACCEPT_PAUSE_SECONDS)
                continue
            try:
                await self._start(conn, _address(peer))
            except Exception:  # one connection's failure must not stop the listener
                conn.close()
                log.exception("could not start a session with %s", _address(peer))

    async def _start(self, conn: socket.socket, address: str) -> None:
        refusal = self.limits.refusal(address)
        if refusal is not None:
            log.warning("refused a connection from %s: %s", address, refusal)
            _refuse(conn)
            return
        release = self.limits.opened(address)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: self.factory(release), conn)
        except OSError as error:  # the client reset it before the session began
            release()
            conn.close()
            log.info("connection from %s lost before its greeting: %s", address, error)

    def _refuse_waiting_with_spare(self, sock: socket.socket) -> None:
        """Out of descriptors: free the spare one to take each waiting client in turn and
        tell it 421, rather than leave it waiting for a greeting that cannot come (the
        libev/nginx trick); one descriptor at a time, as each is closed at once."""
        if self._spare is None:
            return
        os.close(self._spare)
        try:
            while True:
                conn, _ = sock.accept()
                _refuse(conn)
        except OSError:  # none waiting (BlockingIOError), or still out of descriptors
            pass
        finally:
            self._spare = _spare_descriptor()


def listen(host: str, port: int) -> list[socket.socket]:
    """Non-blocking listening sockets for every address `host` names (IPv4 and IPv6)."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _refuse(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # a full buffer or a client already gone: close anyway
        conn.send(TOO_MANY_CONNECTIONS)
    conn.close()


def _spare_descriptor() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


def _close_after(sock: socket.socket, _: asyncio.Task[None]) -> None:
    sock.close()
