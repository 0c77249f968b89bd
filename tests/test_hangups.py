"""Clients that hang up at every SMTP stage, many times, while another client sends: each
hang-up ends only its own session, every other mail gets 250 and becomes a ticket, and a
mail whose final "." was read is stored even though its sender left before the answer.

The misbehaving client speaks SMTP by hand over a raw connection; the well-behaved one
is smtplib, as in every other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, make_mail, send, spool_rows

STAGES = ("greeted", "mail", "rcpt", "data", "mid-data", "after-dot", "before-quit")
STORED_STAGES = ("after-dot", "before-quit")  # the final "." was read: the mail is the gateway's
ROUNDS = 8
DEADLINE_SECONDS = 60  # a generous bound: the whole test takes a few seconds when nothing freezes


class LoopFrozenError(BaseException):
    """Raised into whatever code holds the event loop when it has not let go for too long.
    A BaseException, so a broad `except Exception` in the frozen code cannot swallow it."""


@contextlib.contextmanager
def frozen_loop_alarm(seconds: float) -> Iterator[None]:
    """asyncio.timeout cannot fire while a coroutine spins without yielding; SIGALRM can.
    Past `seconds`, and every second after, the spinning code gets LoopFrozenError, which
    lets the loop run again, so the test's asyncio.timeout ends it instead of the suite hanging."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise LoopFrozenError(f"the event loop did not run for {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


async def reply(reader: asyncio.StreamReader) -> bytes:
    """One SMTP reply, multi-line or not; its last line."""
    line = await reader.readline()
    while line[3:4] == b"-":
        line = await reader.readline()
    return line


async def hang_up_at(port: int, stage: str, raw: bytes) -> None:
    """Speak SMTP up to `stage`, then close the connection without QUIT."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await reply(reader)).startswith(b"220")
        for command, step in (
            (b"EHLO hangup.example", "greeted"),
            (b"MAIL FROM:<bot@hangup.example>", "mail"),
            (b"RCPT TO:<%s>" % MAILBOX.encode(), "rcpt"),
            (b"DATA", "data"),
        ):
            writer.write(command + b"\r\n")
            assert (await reply(reader))[:1] in (b"2", b"3"), command
            if stage == step:
                return
        if stage == "mid-data":
            writer.write(raw[: len(raw) // 2])
            return
        writer.write(raw + b".\r\n")  # the hang-up before reading the answer: nobody hears the 250
        if stage == "before-quit":
            assert (await reply(reader)).startswith(b"250")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def barrier(port: int) -> None:
    """A full round trip with the listener: what was sent before it has been read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reply(reader)
    for command in (b"NOOP\r\n", b"QUIT\r\n"):
        writer.write(command)
        await reply(reader)
    writer.close()
    await writer.wait_closed()


async def misbehave(gateway: Gateway) -> list[str]:
    """Hang up at every stage, ROUNDS times; returns the subjects the listener read a "." for.
    Every round also hangs up after "." while the spool's write lock is held, so that mail
    waits for a later group commit, as it does under load."""
    stored = []
    for round_ in range(ROUNDS):
        for stage in STAGES:
            subject = f"colgado {stage} {round_}"
            await hang_up_at(gateway.port, stage, make_mail(subject))
            stored += [subject] if stage in STORED_STAGES else []
        subject = f"colgado en espera {round_}"
        async with gateway.pipeline.database.transaction():  # another commit under way
            await hang_up_at(gateway.port, "after-dot", make_mail(subject))
            await barrier(gateway.port)
        stored.append(subject)
    return stored


async def behave(gateway: Gateway, count: int) -> list[str]:
    subjects = []
    for index in range(count):
        subject = f"cliente normal {index}"
        assert await send(gateway, make_mail(subject)) == {}  # 250 for every recipient
        subjects.append(subject)
    return subjects


async def test_hang_ups_at_every_stage_affect_only_their_own_session(gateway: Gateway) -> None:
    with frozen_loop_alarm(DEADLINE_SECONDS + 5):
        async with asyncio.timeout(DEADLINE_SECONDS):
            hung_up, sent = await asyncio.gather(misbehave(gateway), behave(gateway, 2 * ROUNDS))
            sent += await behave(gateway, 1)  # after every hang-up: the listener still answers
            await gateway.drain()
    subjects = sorted(str(tk["subject"]) for tk in await gateway.pipeline.queries.list_tickets())
    assert subjects == sorted(sent + hung_up)
    rows = spool_rows(gateway.settings.database.path)
    assert len(rows) == len(sent) + len(hung_up)
    assert all(row["status"] == "done" for row in rows)
