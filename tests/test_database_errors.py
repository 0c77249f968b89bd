"""Which database failures are temporary: busy and locked are retried (451, exit 75,
requeue); a full disk gets 452 4.3.1 and passes by itself when space returns; anything else
(a missing column, say) is reported, never retried forever."""

from __future__ import annotations

import contextlib
import errno
import smtplib
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.daemon import Gateway
from gateway.inbound.spool import OUT_OF_SPACE_PAUSE
from gateway.settings import load_settings
from gateway.storage.spool_file import spool_path
from tests.conftest import MAILBOX, Sink, make_mail, run_cli, send, spool_rows, write_config

EX_TEMPFAIL = 75


def drop_column(database: Path, table: str, column: str) -> None:
    """A schema that does not match the code: an old copy restored, or a botched migration."""
    with sqlite3.connect(database) as connection:
        connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


async def test_a_missing_column_fails_the_mail_with_the_reason_at_once(gateway: Gateway) -> None:
    drop_column(gateway.settings.database.path, "tickets", "phone")
    assert await send(gateway, make_mail("sin columna")) == {}  # the spool itself is fine
    await gateway.drain()
    [row] = spool_rows(gateway.settings.database.path)
    assert row["status"] == "failed"
    assert "no column named phone" in row["error"]
    [summary] = await gateway.pipeline.spool.summaries()
    assert summary.attempts == 1  # not retried as if the database were only busy


def test_ingest_into_a_database_missing_a_column_says_so_in_one_line_and_asks_to_retry(config_path: Path) -> None:
    def ingest(subject: str) -> subprocess.CompletedProcess[bytes]:
        return run_cli(
            config_path, "ingest", "--sender", "c@empresa.example", "--recipient", MAILBOX, stdin=make_mail(subject)
        )

    assert ingest("primero").returncode == 0  # creates the database
    drop_column(spool_path(load_settings(config_path).database.path), "spool", "peer")  # the spool file's
    result = ingest("hola")
    # Not a decision about the mail: Postfix keeps it (up to maximal_queue_lifetime, 5 days)
    # while an operator repairs the database, instead of bouncing it (cli/ingest.py).
    assert result.returncode == EX_TEMPFAIL
    assert b"no column named peer" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert b"Traceback" not in result.stderr


# A full disk, for real: the database on a small tmpfs of its own. CI runs as root, where
# mounting one works; elsewhere the test is skipped with the reason.
FILESYSTEM_BYTES = 8 * 1024 * 1024


@contextlib.contextmanager
def small_filesystem(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_BYTES}", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill_up(directory: Path) -> Path:
    """Take every free byte of the filesystem; returns the filler, to delete for space."""
    filler = directory / "filler"
    piece = b"\0" * 65536
    with filler.open("wb", buffering=0) as file:
        with contextlib.suppress(OSError):
            while True:
                file.write(piece)
        while len(piece) > 1:  # the last few bytes, in smaller pieces
            piece = piece[: len(piece) // 2]
            try:
                file.write(piece)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


@pytest.fixture
async def gateway_on_small_disk(tmp_path: Path, relay: Sink) -> AsyncIterator[tuple[Gateway, FixedClock]]:
    with small_filesystem(tmp_path / "small") as disk:
        clock = FixedClock(datetime.now(UTC))
        running = Gateway(load_settings(write_config(disk, relay_port=relay.port)), clock)
        await running.start()
        try:
            yield running, clock
        finally:
            await running.stop()


async def test_a_full_disk_gets_452_at_rcpt_and_passes_when_space_returns(
    gateway_on_small_disk: tuple[Gateway, FixedClock],
) -> None:
    gateway, clock = gateway_on_small_disk
    accepted = [make_mail("antes de llenarse")]
    assert await send(gateway, accepted[0]) == {}
    await gateway.drain()  # its ticket and acknowledgement are written while there is room
    filler = fill_up(gateway.settings.database.path.parent)

    refused = make_mail("el disco está lleno", body="x" * 50_000)
    with pytest.raises(smtplib.SMTPDataError) as at_data:  # the commit itself finds the disk full
        await send(gateway, refused)
    assert (at_data.value.smtp_code, at_data.value.smtp_error[:5]) == (452, b"4.3.1")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as at_rcpt:  # the next sender is told at once
        await send(gateway, make_mail("otro más"))
    code, text = at_rcpt.value.recipients[MAILBOX]
    assert (code, text[:5]) == (452, b"4.3.1")  # RFC 3463: insufficient system storage, try later

    filler.unlink()  # space returns
    clock.advance(seconds=OUT_OF_SPACE_PAUSE.total_seconds())
    assert await send(gateway, refused) == {}  # the sending MTA's retry
    accepted.append(refused)
    await gateway.drain()
    subjects = sorted(str(tk["subject"]) for tk in await gateway.pipeline.queries.list_tickets())
    assert subjects == ["antes de llenarse", "el disco está lleno"]
    assert [row["raw"] for row in spool_rows(gateway.settings.database.path)] == accepted
