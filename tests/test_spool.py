"""The spool's group commit: one bad mail fails alone, a file handed over is the spool's
to close, and a mail whose sender stopped waiting is stored all the same."""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.inbound.spool import Spool
from gateway.storage.database import Database


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    database = await Database.open(tmp_path / "gateway.db")
    yield Spool(database, SystemClock())
    await database.close()


async def test_one_unreadable_mail_fails_alone_and_the_rest_of_its_batch_is_stored(spool: Spool) -> None:
    unreadable = tempfile.TemporaryFile("wb")  # noqa: SIM115 - the spool closes it
    unreadable.write(b"Subject: x\r\n\r\nbody\r\n")  # seekable, so it is measured; reading it fails
    async with spool.database.transaction():  # another commit under way: all three wait for the next
        first = spool.submit("a@x.example", ["s@y.example"], "peer", b"Subject: a\r\n\r\na\r\n")
        bad = spool.submit("b@x.example", ["s@y.example"], "peer", unreadable)  # type: ignore[arg-type]
        last = spool.submit("c@x.example", ["s@y.example"], "peer", b"Subject: c\r\n\r\nc\r\n")
    assert [await first, await last] == [1, 2]
    with pytest.raises(io.UnsupportedOperation):
        await bad
    assert unreadable.closed
    assert [summary.mail_from for summary in await spool.summaries()] == ["a@x.example", "c@x.example"]


async def test_a_file_is_stored_and_closed_even_when_nobody_waits_for_it_any_more(spool: Spool) -> None:
    raw = b"Subject: colgado\r\n\r\n" + b"x" * 100_000 + b"\r\n"
    data = tempfile.SpooledTemporaryFile(max_size=1024)  # noqa: SIM115 - the spool closes it
    data.write(raw)
    async with spool.database.transaction():
        waiting = spool.submit("a@x.example", ["s@y.example"], "peer", data)  # type: ignore[arg-type]
        waiting.cancel()  # the session that handed it over was cancelled: its client hung up
    assert await spool.add("b@x.example", ["s@y.example"], "peer", b"later") == 2  # committed in order
    assert await spool.raw(1) == raw
    assert data.closed
