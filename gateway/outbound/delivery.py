"""One delivery attempt through the relay, over aiosmtplib: the only module that speaks SMTP
to it.

An attempt ends in one of three ways, as RFC 5321 §4.2.1 sorts replies: a 2xx is sent; a
4xx, no connection or a time-out is retried; a 5xx is failed with the relay's words. Mail
that cannot be put on the wire at all fails on its own, with the reason, and never raises
to the relay's loop: an internationalised address when the relay does not offer SMTPUTF8
(RFC 6531), or an address aiosmtplib refuses (a space, a bracket: it would end the SMTP
command line). Such recipients are left out of the envelope, as an MTA leaves out a
refused RCPT; the mail fails only when none is left.

Several mails share one session, as between MTAs (RFC 5321 §3.3: the next MAIL on the same
connection): up to `MAILS_PER_SESSION`, and for as long as the relay's loop keeps it (see
relay.py). A kept session the relay has closed meanwhile is no outage: the mail is tried once
more, at once, on a new one.

The mail transaction is aiosmtplib's `sendmail` (MAIL, RCPT, DATA) but for the body: its
`data()` runs two regular expressions over the whole mail (line endings, dot-stuffing) and
`sendmail` the first once more for SIZE, about 0.7 ms of CPU for a 22 KB notification, a
third of the relay's cost a mail. The outbox's mail has CRLF line endings already
(mime.py): `normalized` (wire.py) checks that with three counts and `stuffed` doubles dots
with one replace, and the body goes out through aiosmtplib's protocol calls (`write`,
`read_response`: public by name, checked by tests/test_adapters.py). A mail over
wire.STREAMED_BYTES is read from the outbox a piece at a time, each piece on the wire
before the next is read (flow control borrowed in aiosmtplib_adapter.py), so the relay
holds none of it whole.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass

import aiosmtplib
import aiosmtplib.email
from aiosmtplib.protocol import SMTPProtocol

from gateway.outbound.aiosmtplib_adapter import drained
from gateway.outbound.wire import StoredBody, Stuffing, normalized, scan, stuffed
from gateway.settings import OutboundSettings

SENT, RETRY, FAILED = "sent", "retry", "failed"
SMTPUTF8 = "SMTPUTF8"
CLOSING = 421  # RFC 5321 §3.8: the server is closing the session
COMPLETED, WILL_FORWARD, START_INPUT = 250, 251, 354  # RFC 5321 §4.2.2
# A relay may cap the mails of one connection (Exim's smtp_accept_max_per_connection, 1000,
# then 421): a new session well before that, and a bounded one whatever the relay.
MAILS_PER_SESSION = 100
Body = bytes | StoredBody  # the mail whole, or read from the outbox in pieces (wire.py)


@dataclass(frozen=True)
class Delivery:
    """How one attempt ended: sent, retry (temporary) or failed (permanent)."""

    outcome: str
    reply: str
    connection_failed: bool = False
    dropped: bool = False  # the relay closed the session: no reply, or 421 (RFC 5321 §3.8)


def needs_smtputf8(envelope_from: str, recipients: tuple[str, ...], ascii_mail: bool) -> bool:
    """RFC 6531 §3.4: an address or a header in UTF-8 needs the relay's SMTPUTF8."""
    return not (ascii_mail and envelope_from.isascii() and all(r.isascii() for r in recipients))


class Message:
    """What DATA carries: the mail normalized (whole), or where to read it (stored); and
    what MAIL needs to know first, its size and whether it is all ASCII."""

    def __init__(self, raw: bytes, stored: StoredBody | None = None, ascii_only: bool = True, size: int = 0) -> None:
        self.whole = normalized(raw) if stored is None else b""
        self.stored = stored
        self.ascii = raw.isascii() if stored is None else ascii_only
        self.size = len(self.whole) if stored is None else size

    @classmethod
    async def read(cls, body: StoredBody) -> Message:
        ascii_only, size = await scan(body)
        return cls(b"", body, ascii_only, size)

    async def write(self, protocol: SMTPProtocol, timeout: float | None) -> None:
        """DATA's content on the wire; a stored mail a piece at a time, each piece handed
        to the socket before the next is read (the transport's flow control)."""
        if self.stored is None:
            protocol.write(stuffed(self.whole))
            return
        stuffing = Stuffing()
        try:
            async for piece in self.stored.pieces():
                protocol.write(stuffing.feed(piece))
                await drained(protocol, timeout)
        except BaseException:  # the outbox could not be read, say: the session is mid-mail
            if isinstance(protocol.transport, asyncio.WriteTransport):
                protocol.transport.abort()  # without the final dot: the relay takes nothing of it
            raise
        protocol.write(stuffing.end())


def unsendable(address: str, utf8: bool) -> str | None:
    """Why aiosmtplib would refuse `address` on a MAIL or RCPT line, or None."""
    try:
        _on_the_line(address, "utf-8" if utf8 else "ascii")
    except ValueError as error:  # UnicodeEncodeError is one too
        return f"{address!r}: {error}"
    return None


class RelayConnection:
    """A session with the relay, opened on first use and kept for the next mail: at most
    `mails_per_session` mails, and closed by `hang_up` (the relay's loop does, once idle)."""

    def __init__(
        self, settings: OutboundSettings, local_hostname: str, mails_per_session: int = MAILS_PER_SESSION
    ) -> None:
        self.settings = settings
        self.local_hostname = local_hostname
        self.mails_per_session = mails_per_session
        self._connection: aiosmtplib.SMTP | None = None
        self._carried = 0  # mails begun on this session
        self._last_used = 0.0  # time.monotonic() of its last mail

    @property
    def is_open(self) -> bool:
        return self._connection is not None and self._connection.is_connected

    def idle_seconds(self) -> float:
        """How long the open session has carried nothing."""
        return time.monotonic() - self._last_used

    async def send(self, envelope_from: str, recipients: tuple[str, ...], raw: Body) -> Delivery:
        kept = self.is_open and self._carried < self.mails_per_session
        delivery = await self._attempt(envelope_from, recipients, raw)
        if kept and delivery.dropped:
            # The relay closed the session meanwhile (its idle timeout, RFC 5321 §4.5.3.2.7,
            # or its limit of mails a connection), or dropped it mid-mail: not an outage. If
            # it had taken the mail in flight and only its reply was lost, the mail goes twice
            # with the same Message-ID, as after any lost reply (RFC 1047).
            delivery = await self._attempt(envelope_from, recipients, raw)
        self._last_used = time.monotonic()
        return delivery

    async def _attempt(self, envelope_from: str, recipients: tuple[str, ...], raw: Body) -> Delivery:
        try:
            connection = await self._connected()
            body = Message(raw) if isinstance(raw, bytes) else await Message.read(raw)
            utf8 = needs_smtputf8(envelope_from, recipients, body.ascii)
            if utf8 and not connection.supports_extension("smtputf8"):
                return Delivery(FAILED, "the relay does not offer SMTPUTF8 (RFC 6531), which mail with an"
                                        f" internationalised address needs: {', '.join(recipients)}")  # fmt: skip
            refusals = {r: why for r in recipients if (why := unsendable(r, utf8))}
            accepted = [r for r in recipients if r not in refusals]
            if not accepted:
                return Delivery(FAILED, "cannot be sent: " + "; ".join(refusals.values()))
            refused, answer = await _transaction(connection, envelope_from, accepted, body, utf8)
        except aiosmtplib.SMTPRecipientsRefused as error:  # every recipient refused
            await self.hang_up()
            codes = [refusal.code for refusal in error.recipients]
            reply = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
            return Delivery(FAILED if all(code >= 500 for code in codes) else RETRY, reply)
        except aiosmtplib.SMTPResponseException as error:
            await self.hang_up()
            outcome = FAILED if error.code >= 500 else RETRY
            return Delivery(outcome, f"{error.code} {error.message}", dropped=error.code == CLOSING)
        except aiosmtplib.SMTPServerDisconnected as error:
            await self.hang_up()
            return Delivery(RETRY, f"connection failed: {error}", connection_failed=True, dropped=True)
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError) as error:
            await self.hang_up()
            return Delivery(RETRY, f"connection failed: {error}", connection_failed=True)
        except (aiosmtplib.SMTPException, OSError) as error:  # e.g. no STARTTLS: an admin can fix it
            await self.hang_up()
            return Delivery(RETRY, f"{type(error).__name__}: {error}", connection_failed=True)
        except ValueError as error:  # the envelope sender, say: aiosmtplib refuses it (see unsendable)
            await self.hang_up()  # it may have been half-way through the envelope
            return Delivery(FAILED, f"cannot be sent: {error}")
        return Delivery(SENT, _sent_reply(answer, {**refusals, **_refused(refused)}))

    async def _connected(self) -> aiosmtplib.SMTP:
        self._carried += 1
        if self._connection is not None and self._connection.is_connected and self._carried <= self.mails_per_session:
            return self._connection
        await self.hang_up()
        self._carried = 1
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
        if self._connection.is_ehlo_or_helo_needed:  # now, to know its extensions (SMTPUTF8)
            try:
                await self._connection.ehlo()
            except aiosmtplib.SMTPHeloError:  # RFC 5321 §3.2: a server too old for EHLO
                await self._connection.helo()
        return self._connection

    async def hang_up(self) -> None:
        connection, self._connection, self._carried = self._connection, None, 0
        if connection is not None and connection.is_connected:
            try:
                await connection.quit()
            except (aiosmtplib.SMTPException, OSError):  # it is going away either way
                connection.close()


async def _transaction(
    connection: aiosmtplib.SMTP, envelope_from: str, recipients: list[str], body: Message, utf8: bool
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """MAIL, RCPT, DATA as aiosmtplib's `sendmail` and its `mail`, `rcpt`, `data` send them,
    and raising as they do, with each address quoted once (`_on_the_line`); the session is
    not RSET after a refusal (the caller hangs up)."""
    encoding = "utf-8" if utf8 else "ascii"
    options = [f"SIZE={body.size}"] if connection.supports_extension("size") else []  # RFC 1870
    options += [SMTPUTF8] if utf8 else []
    reply = await connection.execute_command(b"MAIL", b"FROM:" + _on_the_line(envelope_from, encoding),
                                             *(option.encode("ascii") for option in options))  # fmt: skip
    if reply.code != COMPLETED:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope_from)
    refusals: list[aiosmtplib.SMTPRecipientRefused] = []
    for recipient in recipients:
        reply = await connection.execute_command(b"RCPT", b"TO:" + _on_the_line(recipient, encoding))
        if reply.code not in (COMPLETED, WILL_FORWARD):
            refusals.append(aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient))
    if len(refusals) == len(recipients):
        raise aiosmtplib.SMTPRecipientsRefused(refusals)
    start = await connection.execute_command(b"DATA")
    if start.code != START_INPUT:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    if connection.protocol is None:  # the relay hung up right after its 354
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    await body.write(connection.protocol, connection.timeout)
    answer = await connection.protocol.read_response(timeout=connection.timeout)
    if answer.code != COMPLETED:
        raise aiosmtplib.SMTPDataError(answer.code, answer.message)
    refused = {refusal.recipient: aiosmtplib.SMTPResponse(refusal.code, refusal.message) for refusal in refusals}
    return refused, answer.message


@functools.lru_cache(maxsize=4096)  # a desk writes to the same few hundred addresses all day
def _on_the_line(address: str, encoding: str) -> bytes:
    """`address` as MAIL FROM or RCPT TO carries it (aiosmtplib's quoting, which refuses
    what would end the command line); ValueError if it cannot be."""
    return aiosmtplib.email.quote_address(address).encode(encoding)


def _refused(refused: dict[str, aiosmtplib.SMTPResponse]) -> dict[str, str]:
    return {address: f"{address}: {response.code} {response.message}" for address, response in refused.items()}


def _sent_reply(answer: str, refused: dict[str, str]) -> str:
    """The relay's answer; and, when some recipients were refused, who and why."""
    reply = answer.strip()
    if refused:
        reply += " (refused: " + "; ".join(refused.values()) + ")"
    return reply
