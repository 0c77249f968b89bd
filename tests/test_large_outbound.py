"""Large outbox mail (an agents' copy carrying the customer's files): it reaches the relay
byte for byte as queued, dot-stuffed and in CRLF across the pieces it is read and written
in, and the relay holds none of it whole, however many are due at once."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.processes import child
from gateway.clock import SystemClock
from gateway.outbound.outbox import OutboundMail, Outbox
from gateway.outbound.relay import make_relay
from gateway.settings import load_settings
from gateway.storage.database import BLOB_PIECE_BYTES, Database
from tests.conftest import Sink, write_config

SENDER = "soporte.latam@estela.example"
MB = 1024 * 1024


def large_mail(number: int, size: int) -> bytes:
    """A mail of about `size` bytes whose lines starting with a dot sit on, just before and
    just after every piece boundary of the outbox's reads, with a CRLF cut in two by one."""
    head = (
        f"From: Soporte <{SENDER}>\r\nTo: agentes@estela.example\r\nSubject: Ticket {number}\r\n"
        f"Message-ID: <grande{number}@estela.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    body = bytearray(head)
    line = 0
    while len(body) < size:
        room = BLOB_PIECE_BYTES - len(body) % BLOB_PIECE_BYTES
        if 2 <= room < 100:  # a dotted line at the boundary: after a whole CRLF, or one cut in two
            cut = len(body) // BLOB_PIECE_BYTES % 2
            body += b"y" * (room - 2 + cut) + b"\r\n.a dot at a piece's start\r\n"
            continue
        line += 1
        body += b"." * (line % 3) + f"linea {line} ".encode() + b"z" * (line % 70) + b"\r\n"
    return bytes(body)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await Database.open(tmp_path / "gateway.db", durable=False)
    yield opened
    await opened.close()


async def queue(database: Database, mails: list[bytes]) -> None:
    outbox = Outbox(database, SystemClock())
    for number, raw in enumerate(mails):
        async with database.transaction():
            mail = OutboundMail("agent_new_ticket", f"grande{number}@estela.example", SENDER,
                                ("agentes@estela.example",), raw)  # fmt: skip
            outbox.add(None, mail)


async def deliver(database: Database, sink: Sink, tmp_path: Path) -> int:
    relay = make_relay(load_settings(write_config(tmp_path, relay_port=sink.port)), database, SystemClock())
    try:
        return await relay.deliver_due()
    finally:
        await sink.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stuffing_in_pieces_is_the_whole_mails_stuffing_wherever_the_pieces_end(seed: int) -> None:
    from gateway.outbound.wire import Stuffing, normalized, stuffed

    rng = random.Random(seed)
    atoms = [b".", b"..", b"\r\n", b"\r", b"\n", b"\r\n.", b"x", b"texto ", b"\r\r\n", b"\n."]
    for _ in range(300):
        raw = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 40)))
        cuts = sorted(rng.sample(range(len(raw) + 1), k=min(len(raw) + 1, rng.randint(0, 6))))
        pieces = [raw[start:end] for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        stuffing = Stuffing()
        wire = b"".join(stuffing.feed(piece) for piece in pieces) + stuffing.end()
        assert wire == stuffed(normalized(raw)), (raw, pieces)


async def test_a_large_mail_arrives_byte_identical_with_dots_across_the_pieces(
    tmp_path: Path, database: Database
) -> None:
    raw = large_mail(0, 3 * MB)
    assert raw.count(b"\r\n.") > 3 * MB // BLOB_PIECE_BYTES  # dotted lines around every boundary
    await queue(database, [raw])
    sink = Sink()
    await sink.start()
    assert await deliver(database, sink, tmp_path) == 1
    [received] = sink.received
    assert received.raw == raw
    assert f"SIZE={len(raw)}" in received.mail_options
    rows = await database.fetch_all("SELECT status FROM outbox")
    assert [row["status"] for row in rows] == ["sent"]


async def test_several_large_mails_due_at_once_are_never_held_whole(tmp_path: Path, database: Database) -> None:
    """Eight 2 MB mails due in one round, to a relay in a process of its own (so what is
    traced here is the gateway's): each is read in pieces as it is sent, so this process
    holds at its peak a fraction of one, not the eight the round's look at the outbox finds."""
    size = 2 * MB
    await queue(database, [large_mail(number, size) for number in range(8)])
    with child("bench.servers", "sink") as (_, port):
        relay = make_relay(load_settings(write_config(tmp_path, relay_port=port)), database, SystemClock())
        tracemalloc.start()
        try:
            sent = await relay.deliver_due()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert sent == 8
    rows = await database.fetch_all("SELECT status FROM outbox")
    assert [row["status"] for row in rows] == ["sent"] * 8
    assert peak < size, f"{peak / MB:.1f} MB traced at the peak"
