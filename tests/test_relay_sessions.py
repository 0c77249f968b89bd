"""Several outbox mails over one session with the relay, as between MTAs: each mail still
judged on its own, a session the relay drops costs no mail and sends none twice, and a
session ends once idle and after a bounded number of mails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.outbound.outbox import OutboundMail, Outbox
from gateway.outbound.relay import Relay, make_relay
from gateway.settings import load_settings
from gateway.storage.database import Database
from tests.conftest import Sink, SinkHandler, write_config

SENDER = "soporte.latam@estela.example"


def raw_mail(number: int) -> bytes:
    """A notification as the outbox holds it (CRLF), with lines a relay must dot-stuff."""
    return (
        f"From: Soporte <{SENDER}>\r\nTo: c{number}@empresa.example\r\nSubject: Aviso {number}\r\n"
        f"Message-ID: <aviso{number}@estela.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Aviso numero {number}.\r\n.\r\n..dos puntos\r\n.linea con punto\r\nfin\r\n"
    ).encode()


class Sessions(SinkHandler):
    """A sink that counts sessions (one EHLO each), refuses `refuse` at RCPT with a 550,
    and, from session `drop_in_session` on, drops the connection at its `drop_at`-th mail:
    "before-250" reads the mail and hangs up without answering (nothing kept), "after-250"
    keeps and answers it, then hangs up."""

    def __init__(self, refuse: str = "", drop_at: int = 0, drop: str = "before-250") -> None:
        super().__init__()
        self.sessions = 0
        self.quit = asyncio.Event()
        self.refuse, self.drop_at, self.drop = refuse, drop_at, drop
        self._in_session = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.sessions += 1
        self._in_session = 0
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address == self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self._in_session += 1
        if self.drop_at and self._in_session == self.drop_at and self.sessions == 1:
            if self.drop == "before-250":
                server.transport.abort()  # the mail in flight: never answered, not kept
                return "451 4.3.0 not sent: the connection is gone"
            asyncio.get_running_loop().call_soon(server.transport.close)  # once the 250 is out
        return await super().handle_DATA(server, session, envelope)

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        self.quit.set()
        return "221 Bye"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await Database.open(tmp_path / "gateway.db", durable=False)
    yield opened
    await opened.close()


async def started(handler: Sessions) -> Sink:
    sink = Sink()
    sink.handler = handler
    return await sink.start()


def relay_to(sink: Sink, database: Database, tmp_path: Path) -> Relay:
    return make_relay(load_settings(write_config(tmp_path, relay_port=sink.port)), database, SystemClock())


async def queue(database: Database, numbers: range) -> None:
    outbox = Outbox(database, SystemClock())
    async with database.transaction():
        for number in numbers:
            mail = OutboundMail("acknowledgement", f"aviso{number}@estela.example", SENDER,
                                (f"c{number}@empresa.example",), raw_mail(number))  # fmt: skip
            outbox.add(None, mail)


async def statuses(database: Database) -> dict[str, str]:
    rows = await database.fetch_all("SELECT message_id, status FROM outbox ORDER BY id")
    return {row["message_id"]: row["status"] for row in rows}


def message_ids(sink: Sink) -> list[str]:
    return [str(mail.message["Message-ID"]).strip("<>") for mail in sink.received]


async def test_mail_queued_round_after_round_goes_over_one_session_intact(tmp_path: Path, database: Database) -> None:
    """As the processor queues a notification or two at a time and rings the relay."""
    sink = await started(handler := Sessions())
    relay = relay_to(sink, database, tmp_path)
    relay.session_idle_seconds = 60.0  # longer than any pause between two rounds here
    stopping = asyncio.Event()
    running = asyncio.create_task(relay.run(stopping))
    try:
        for number in range(10):
            async with relay._round:  # the last round is over: the relay waits for the next
                await queue(database, range(number, number + 1))
            relay.wakeup.set()
            assert await handler.wait_until(lambda n=number: len(sink.received) > n, 10)
        assert handler.sessions == 1
        assert [mail.raw for mail in sink.received] == [raw_mail(number) for number in range(10)]
    finally:
        stopping.set()
        await running
        await sink.stop()
    assert handler.quit.is_set()  # and the session ended with the relay
    assert set((await statuses(database)).values()) == {"sent"}


async def test_a_session_ends_once_idle(tmp_path: Path, database: Database) -> None:
    sink = await started(handler := Sessions())
    relay = relay_to(sink, database, tmp_path)
    relay.session_idle_seconds = 0.05
    stopping = asyncio.Event()
    running = asyncio.create_task(relay.run(stopping))
    try:
        await queue(database, range(2))
        relay.wakeup.set()
        async with asyncio.timeout(10):
            await handler.quit.wait()  # the relay hung up by itself, still running
        assert not running.done() and len(sink.received) == 2
    finally:
        stopping.set()
        await running
        await sink.stop()


async def test_a_session_carries_a_bounded_number_of_mails(tmp_path: Path, database: Database) -> None:
    sink = await started(handler := Sessions())
    relay = relay_to(sink, database, tmp_path)
    relay.connection.mails_per_session = 3
    await queue(database, range(10))
    try:
        assert await relay.deliver_due() == 10
    finally:
        await sink.stop()
    assert handler.sessions == 4 and len(sink.received) == 10


async def test_a_refused_mail_in_a_session_leaves_the_others_sent(tmp_path: Path, database: Database) -> None:
    sink = await started(Sessions(refuse="c2@empresa.example"))
    relay = relay_to(sink, database, tmp_path)
    await queue(database, range(5))
    try:
        await relay.deliver_due()
    finally:
        await sink.stop()
    assert message_ids(sink) == [f"aviso{number}@estela.example" for number in (0, 1, 3, 4)]
    assert list((await statuses(database)).values()) == ["sent", "sent", "failed", "sent", "sent"]
    reply = await database.fetch_one("SELECT relay_reply FROM outbox WHERE message_id = 'aviso2@estela.example'")
    assert reply is not None and "550 5.1.1" in reply["relay_reply"]


@pytest.mark.parametrize("drop", ["before-250", "after-250"])
async def test_a_session_dropped_mid_round_sends_every_mail_once(tmp_path: Path, database: Database, drop: str) -> None:
    """The relay drops the session at the 3rd mail: the two answered are sent, the 3rd is
    tried again on a new session at once, and so are the rest, in the same round."""
    sink = await started(handler := Sessions(drop_at=3, drop=drop))
    relay = relay_to(sink, database, tmp_path)
    await queue(database, range(10))
    try:
        await relay.deliver_due()
    finally:
        await sink.stop()
    assert message_ids(sink) == [f"aviso{number}@estela.example" for number in range(10)]  # each once
    assert handler.sessions == 2
    assert set((await statuses(database)).values()) == {"sent"}


@pytest.mark.parametrize(
    ("queued", "arrives"),
    [
        (b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\n", b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\n"),
        (b".Odd: first line\r\n\r\nbody", b".Odd: first line\r\n\r\nbody\r\n"),  # no final CRLF
        (b"Subject: b\n\n.\nbare LF\rbare CR\r\r\n", b"Subject: b\r\n\r\n.\r\nbare LF\r\nbare CR\r\n\r\n"),
    ],
    ids=["dots", "leading-dot", "bare-line-endings"],
)
async def test_the_body_arrives_as_queued_in_crlf(
    tmp_path: Path, database: Database, queued: bytes, arrives: bytes
) -> None:
    """RFC 5321 §4.5.2 dot-stuffing and §2.3.8 CRLF, however the mail was written."""
    sink = await started(Sessions())
    relay = relay_to(sink, database, tmp_path)
    async with database.transaction():
        Outbox(database, SystemClock()).add(
            None, OutboundMail("t", "x@estela.example", SENDER, ("c@empresa.example",), queued)
        )
    try:
        await relay.deliver_due()
    finally:
        await sink.stop()
    assert [mail.raw for mail in sink.received] == [arrives]
