"""The SMTP/LMTP listener: accept mail for our mailboxes, spool it, then say 250.

Guarantees: a recipient that is not one of our mailboxes is refused at RCPT time (we are
never an open relay and never bounce later); `250` is sent only after the raw message and
its envelope are committed to the spool; our own failure answers `451` so the sending MTA
retries instead of giving up.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from gateway.inbound.aiosmtpd_adapter import AdaptedSMTP
from gateway.inbound.connections import ConnectionLimits, Listener, listen
from gateway.inbound.spool import Spool
from gateway.parsing.limits import header_size
from gateway.runtime import metrics
from gateway.settings import Settings
from gateway.storage.database import is_disk_full, is_temporary

log = logging.getLogger(__name__)

# RFC 5321 §4.2 and RFC 3463 enhanced status codes.
RECIPIENT_OK = "250 2.1.5 Recipient OK"
UNKNOWN_RECIPIENT = "550 5.1.1 <{address}>: no such mailbox here"
QUEUED = "250 2.0.0 Message accepted, queued as {spool_id}"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure storing the message; try again later"
BUSY = "451 4.3.2 Too much mail waiting to be processed; try again later"
BACKLOG_CHECK_SECONDS = 0.25  # how stale the backlog count may be: one query per period, not per mail
IN_MEMORY_BYTES = 1024 * 1024  # of a mail being received; the rest waits in a temporary file
INSUFFICIENT_STORAGE = "452 4.3.1 Insufficient system storage; try again later"
HEADER_TOO_LARGE = "552 5.3.4 Message header too large ({size} bytes, limit {limit})"
# RFC 5321 §4.5.3.2 lets a server close a silent or overlong session; 421 (§3.8) tells the
# client to retry later, as Postfix's "421 4.4.2 Error: timeout exceeded" does.
IDLE_TIMEOUT = "421 4.4.2 {hostname} Error: timeout exceeded, closing connection"
DATA_TIMEOUT = "421 4.4.2 {hostname} Error: DATA took over {seconds:g} s, closing connection"
WRONG_PROTOCOL = '421 4.3.5 {hostname} speaks SMTP, not LMTP: set [smtp] protocol = "lmtp" in its configuration'


class InboundHandler:
    """aiosmtpd handler: the hooks aiosmtpd calls for RCPT and DATA."""

    def __init__(self, settings: Settings, spool: Spool, on_spooled: Callable[[], None]) -> None:
        self.settings = settings
        self.spool = spool
        self.on_spooled = on_spooled
        self.lmtp = settings.smtp.protocol == "lmtp"
        self._backlog = 0
        self._backlog_checked = float("-inf")

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.settings.mailbox_for(address) is None:
            log.info("refused RCPT <%s> from %s: not one of our mailboxes", address, session.peer)
            return UNKNOWN_RECIPIENT.format(address=_printable(address))
        if self.spool.out_of_space():  # RFC 5321 §4.5.3.1.10 and RFC 3463 4.3.1: try later
            return INSUFFICIENT_STORAGE
        if await self._too_busy():
            return BUSY
        envelope.rcpt_tos.append(address)
        return RECIPIENT_OK

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        # The file is ours (see StreamingData): handed to the spool, or closed here.
        data: BinaryIO = envelope.data_file  # type: ignore[attr-defined]
        try:
            refusal = self._header_refusal(envelope, data)
        except BaseException:
            data.close()
            raise
        if refusal is not None:
            data.close()
            return self._per_recipient(envelope, refusal)
        try:
            # The spool owns `data` from here and stores the mail even if this wait is
            # cancelled (the sender hung up after its "."), then closes it.
            committed = self.spool.submit(
                envelope.mail_from or "", list(envelope.rcpt_tos), _peer_text(session.peer), data
            )
            spool_id = await committed
        except Exception as error:  # any failure to commit: the sender must keep the mail and retry
            return self._per_recipient(envelope, self._failure_reply(envelope, error))
        log.debug("spooled %d from <%s> to %s", spool_id, envelope.mail_from, envelope.rcpt_tos)
        self.on_spooled()
        return self._per_recipient(envelope, QUEUED.format(spool_id=spool_id))

    def _header_refusal(self, envelope: Envelope, data: BinaryIO) -> str | None:
        limit = self.settings.limits.max_header_bytes
        size = header_size(data.read(limit + len(b"\r\n\r\n")))
        data.seek(0)
        if size <= limit:
            return None
        log.info("refused mail from <%s>: header of %d bytes over %d", envelope.mail_from, size, limit)
        return HEADER_TOO_LARGE.format(size=size, limit=limit)

    @staticmethod
    def _failure_reply(envelope: Envelope, error: Exception) -> str:
        if is_disk_full(error):
            log.error("cannot spool mail from <%s>: out of space (%s); new mail gets 452 for now",
                      envelope.mail_from, error)  # fmt: skip
            return INSUFFICIENT_STORAGE
        if is_temporary(error):
            log.warning("cannot spool mail from <%s>: %s", envelope.mail_from, error)
        else:
            log.error("cannot spool mail from <%s>", envelope.mail_from, exc_info=error)
        return TEMPORARY_FAILURE

    async def _too_busy(self) -> bool:
        limit = self.settings.pipeline.max_backlog
        if not limit:
            return False
        if asyncio.get_running_loop().time() - self._backlog_checked > BACKLOG_CHECK_SECONDS:
            await self.recount_backlog()
        return self._backlog >= limit

    async def recount_backlog(self) -> None:
        """Count the mail waiting to be processed now (otherwise at most every 250 ms)."""
        self._backlog = await self.spool.backlog()
        self._backlog_checked = asyncio.get_running_loop().time()
        if self.settings.pipeline.max_backlog and self._backlog >= self.settings.pipeline.max_backlog:
            log.warning("%d mails waiting to be processed: new mail gets 451 until the pipeline catches up",
                        self._backlog)  # fmt: skip

    def _per_recipient(self, envelope: Envelope, reply: str) -> str:
        # LMTP (RFC 2033 §4.2) answers DATA once per accepted recipient.
        if self.lmtp:
            return "\r\n".join(reply for _ in envelope.rcpt_tos)
        return reply


class StreamingData(AdaptedSMTP):
    """DATA written to a temporary file as it arrives (in memory up to a megabyte, then on
    disk), instead of aiosmtpd's list of lines joined at the end, which holds several times
    each mail's size per session (docs/performance.md). The handler reads `envelope.data_file`.
    RFC 5321 §4.1.1.4 (DATA, 354, the final "."), §4.5.2 (dot-stuffing), §4.5.3.1.6 (lines).

    Timeouts: aiosmtpd's `timeout` is a timer restarted only when a command arrives, so
    during DATA it would be a total deadline, cutting a slow but steady sender. Here every
    byte received during DATA restarts it, and `data_timeout` bounds DATA as a whole.
    `on_close` is called once, when the connection is lost (the listener's slot is free).
    What this borrows from aiosmtpd's internals, and why: see aiosmtpd_adapter.
    """

    def __init__(self, *args: Any, data_timeout: float, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_timeout = data_timeout
        self.on_close = on_close
        self._in_data = False

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self.on_close()

    def data_received(self, data: bytes) -> None:
        if self._in_data:  # progress: a slow but steady sender is not idle
            self.restart_idle_timer()
        super().data_received(data)

    def on_idle_timeout(self) -> None:
        # aiosmtpd closes without a word; a client that hears 421 knows to retry.
        if self.transport is not None and not self.transport.is_closing():
            self.write_now(IDLE_TIMEOUT.format(hostname=self.hostname).encode() + b"\r\n")

    def on_reply(self, command: str, status: Any) -> None:
        """Every RCPT and DATA reply of the handler, counted by code (metrics.py)."""
        metrics.replied(command, status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd command method
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)  # noqa: SIM115 - handed on
        self._in_data = True
        try:
            async with asyncio.timeout(self.data_timeout):
                problem = await self._receive(data)
        except BaseException as error:  # cut (deadline, idle timer, hang-up): nothing is stored
            data.close()
            if isinstance(error, TimeoutError):
                await self._close_on_data_timeout()
                return
            raise
        finally:
            self._in_data = False
        if problem:
            data.close()
            self.end_data()
            await self.push(problem)
            return
        data.seek(0)
        # From here the handler owns the file: it hands it to the spool, which closes it once
        # the mail is committed, or closes it itself. Closing it here when this session is
        # cancelled (the client hung up after its ".") would pull it from under the spool.
        self.envelope.data_file = data  # type: ignore[attr-defined]
        status = await self.call_data_hook()
        self.end_data()
        await self.push(status)

    async def _close_on_data_timeout(self) -> None:
        assert self.session is not None
        log.info("cut DATA from %s after %g s: too slow in all", _peer_text(self.session.peer), self.data_timeout)
        await self.push(DATA_TIMEOUT.format(hostname=self.hostname, seconds=self.data_timeout))
        assert self.transport is not None
        self.transport.close()

    async def _receive(self, data: IO[bytes]) -> str | None:
        """Read lines up to the lone ".", unstuffed, into `data`; a refusal, or None.

        A line may be longer than RFC 5321 §4.5.3.1.6's 1,000 bytes: HTML generators and
        ERPs write such lines and Postfix and Exim take them, so it is read in pieces the
        size of the stream's limit, bounded only by the message size, and kept as it came."""
        size, limit, problem = 0, self.data_size_limit, None
        line_start = True
        while True:
            try:
                piece = await self.stream.readuntil(b"\r\n")
                line_ends = True
            except asyncio.LimitOverrunError as overrun:  # no CRLF within the limit: the line goes on
                piece = await self.stream.readexactly(overrun.consumed)
                line_ends = False
            if line_start:
                if piece == b".\r\n":
                    return problem
                if piece.startswith(b"."):
                    piece = piece[1:]
            line_start = line_ends
            size += len(piece)
            if limit and size > limit:
                problem = problem or "552 5.3.4 Error: too much mail data"
            if problem is None:
                data.write(piece)


class StreamingLMTP(StreamingData, LMTP):
    """LMTP with the same streaming DATA."""


class StreamingSMTP(StreamingData):
    """SMTP, answering an LMTP client's LHLO (RFC 2033 §4.1) with 421: Postfix's `lmtp:`
    transport bounces every mail on aiosmtpd's `500 "LHLO" not recognized`, and defers it
    on a 4xx, so the mail waits until `[smtp] protocol` is fixed."""

    async def smtp_LHLO(self, arg: str) -> None:  # noqa: N802 - aiosmtpd command method
        log.error('an LMTP client (LHLO) came to an SMTP listener: set [smtp] protocol = "lmtp"')
        await self.push(WRONG_PROTOCOL.format(hostname=self.hostname))
        assert self.transport is not None
        self.transport.close()


def make_protocol_factory(settings: Settings, handler: InboundHandler) -> Callable[[Callable[[], None]], SMTP]:
    protocol_class = StreamingLMTP if settings.smtp.protocol == "lmtp" else StreamingSMTP

    def factory(on_close: Callable[[], None]) -> SMTP:
        return protocol_class(
            handler,
            hostname=settings.smtp.hostname,
            ident="ticket-gateway",
            data_size_limit=settings.smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=settings.smtp.idle_timeout_seconds,
            data_timeout=settings.smtp.data_timeout_seconds,
            on_close=on_close,
        )

    return factory


async def start_listener(settings: Settings, handler: InboundHandler) -> Listener:
    """Listen on `[smtp] host` and `port`, within `[smtp] max_connections` and
    `max_connections_per_client` (see gateway/inbound/connections.py)."""
    limits = ConnectionLimits(settings.smtp.max_connections, settings.smtp.max_connections_per_client)
    return Listener(listen(settings.smtp.host, settings.smtp.port), make_protocol_factory(settings, handler), limits)


def _printable(address: str) -> str:
    return "".join(ch for ch in address if ch.isprintable())[:256]


def _peer_text(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")
