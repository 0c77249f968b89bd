"""Several mails in one transaction when mail waits: each applied exactly once after a
SIGKILL at any moment, a poison mail set aside alone, and one mail's error failing only it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import select
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import gateway.desk.pipeline as pipeline_module
from gateway.clock import SystemClock
from gateway.desk.actions import Desk
from gateway.desk.pipeline import Pipeline
from gateway.inbound.spool import Spool
from gateway.parsing.workers import Parser
from gateway.settings import Settings, load_settings
from gateway.storage.database import Database
from gateway.storage.spool_file import spool_path
from tests.conftest import MAILBOX, PROJECT, make_mail, spool_rows, write_config

# A processor as `serve` runs it in its child process, on its own: it drains the spool.
# Given a spool id or a subject, it also parses each mail as soon as it is claimed (so the
# mails behind one are there to share its transaction) and hangs in the transaction on
# that mail, as a poison mail would, until it is killed.
PROCESSOR = """
import asyncio, os, sys, threading
from pathlib import Path
from gateway.clock import SystemClock
from gateway.desk.actions import Desk
from gateway.parsing.workers import Parser
from gateway.processor import Processor
from gateway.runtime.children import begin_child
from gateway.settings import load_settings
from tests.test_pipeline_batches import parsed_at_once

settings = load_settings(Path(sys.argv[1]))
begin_child(settings.logging.level, os.getppid(), settings.logging.format)
hang_on = sys.argv[2:]
applying = Desk.apply

async def hangs_on_the_poison(self, decision, entry, mail, *rest):
    if str(entry.id) in hang_on or mail.subject in hang_on:
        print("in hand", flush=True)
        threading.Event().wait()
    return await applying(self, decision, entry, mail, *rest)

if hang_on:
    Parser.start = parsed_at_once
    Desk.apply = hangs_on_the_poison

async def main():
    processor = Processor(settings, SystemClock(), outbox_bell=lambda: None)
    await processor.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


PARSER_START = Parser.start


def parsed_at_once(self: Parser, spool_id: int, raw: bytes | None) -> asyncio.Future[Any]:
    """`Parser.start` with the mail parsed here before it returns: whether a batch forms
    does not depend on how fast a parser worker is."""
    with contextlib.closing(sqlite3.connect(spool_path(Path(self.database)))) as connection:
        [(stored,)] = connection.execute("SELECT raw FROM spool_raw WHERE id = ?", (spool_id,))
    workers, self.workers = self.workers, 0
    try:
        return PARSER_START(self, spool_id, stored)
    finally:
        self.workers = workers


async def spool_mails(settings: Settings, mails: list[tuple[str, bytes]]) -> None:
    """Mail accepted while no processor runs: it waits, queued."""
    database = await Database.open(settings.database.path)
    try:
        spool = Spool(database, SystemClock())
        await asyncio.gather(*(spool.submit(sender, [MAILBOX], "test", raw) for sender, raw in mails))
    finally:
        await database.close()


def customer(index: int, subject: str | None = None) -> tuple[str, bytes]:
    address = f"cliente{index}@empresa.example"
    return address, make_mail(
        subject or f"Caso {index}", sender=f"Cliente {index} <{address}>", message_id=f"<lote-{index}@empresa.example>"
    )


def start_processor(config: Path, hang_on: str = "") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", PROCESSOR, str(config), *([hang_on] if hang_on else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT,
    )


def kill(processor: subprocess.Popen[bytes]) -> None:
    processor.kill()
    processor.wait()
    for stream in (processor.stdout, processor.stderr):
        if stream is not None:
            stream.close()


async def drain_here(settings: Settings, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """What the next processor does at start: recover what a crash left, then drain."""
    database = await Database.open(settings.database.path)
    pipeline = Pipeline(settings, database, SystemClock(), parse_workers=1)
    try:
        await pipeline.prepare()
        await pipeline.spool.recover_interrupted(settings.pipeline.max_attempts)
        await pipeline.drain()
    finally:
        pipeline.parser.close()
        await database.close()


def applied_once_each(database: Path, mails: int) -> None:
    """One inbound message and one ticket per spooled mail, and one set of notifications
    per ticket (an acknowledgement to the customer, a notice to the agents)."""
    with sqlite3.connect(database) as connection:
        statuses = Counter(status for (status,) in connection.execute("SELECT status FROM spool"))
        stored = Counter(
            spool_id for (spool_id,) in connection.execute("SELECT spool_id FROM messages WHERE direction = 'inbound'")
        )
        tickets = connection.execute("SELECT count(*) FROM tickets").fetchone()[0]
        notified = Counter(
            (ticket_id, template)
            for ticket_id, template in connection.execute("SELECT ticket_id, template FROM outbox")
        )
    assert statuses == {"done": mails}
    assert sorted(stored) == list(range(1, mails + 1)) and set(stored.values()) == {1}
    assert tickets == mails
    assert len(notified) == 2 * mails and set(notified.values()) == {1}


def test_sigkill_at_random_moments_of_a_batched_drain_applies_each_mail_once(tmp_path: Path) -> None:
    mails = 120
    settings = load_settings(write_config(tmp_path))
    asyncio.run(spool_mails(settings, [customer(index) for index in range(mails)]))
    chooser = random.Random(1811)
    for run in range(4):
        if run % 2:  # in the transaction, some mails into a batch, before its commit
            fresh = first_never_taken(settings.database.path)  # the first of the next batch
            hang_on = fresh + chooser.randrange(2, pipeline_module.BATCH_MAILS)
            processor = start_processor(tmp_path / "config.toml", hang_on=str(hang_on))
            wait_until_in_hand(processor)
        else:  # any moment: once it has logged a few mails done, whatever it does then
            processor = start_processor(tmp_path / "config.toml")
            wait_for_mails_done(processor, chooser.randrange(1, 30))
        kill(processor)
        if run % 2:  # taken in hand with the mails of its batch (those before it maybe committed)
            assert set(range(fresh, fresh + pipeline_module.BATCH_MAILS)) <= set(counted(settings.database.path))
    asyncio.run(drain_here(settings))
    applied_once_each(settings.database.path, mails)


def test_sigkill_while_mail_keeps_arriving_applies_each_spooled_mail_once(tmp_path: Path) -> None:
    """The spool file is written while the processor copies from it, claims, applies and
    is killed: after a last start, each spool id is one message, one ticket and one set
    of notifications, and none is lost."""
    waves, per_wave = 4, 30
    settings = load_settings(write_config(tmp_path))
    mails = [customer(index) for index in range(waves * per_wave)]
    chooser = random.Random(1812)
    for wave in range(waves):
        processor = start_processor(tmp_path / "config.toml")
        asyncio.run(spool_mails(settings, mails[wave * per_wave : (wave + 1) * per_wave]))
        wait_for_mails_done(processor, chooser.randrange(1, per_wave))
        kill(processor)
    asyncio.run(drain_here(settings))
    applied_once_each(settings.database.path, waves * per_wave)


def first_never_taken(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        [(spool_id,)] = connection.execute("SELECT min(id) FROM spool WHERE status != 'done' AND attempts = 0")
    return int(spool_id)


def counted(database: Path) -> list[int]:
    """The mails taken in hand at least once."""
    with sqlite3.connect(database) as connection:
        return [spool_id for (spool_id,) in connection.execute("SELECT id FROM spool WHERE attempts > 0")]


def wait_for_mails_done(processor: subprocess.Popen[bytes], count: int) -> None:
    """Until the processor has logged `count` mails done; one still short of them after a
    minute is killed, so the test fails instead of hanging."""
    assert processor.stderr is not None
    watchdog = threading.Timer(60, processor.kill)
    watchdog.start()
    try:
        for line in processor.stderr:
            count -= bool(re.search(rb"inbound \d+ ", line))
            if count == 0:
                return
    finally:
        watchdog.cancel()
    raise AssertionError(f"the processor ended, or did nothing for a minute, {count} mail(s) short")


def attempts(database: Path) -> list[int]:
    with sqlite3.connect(database) as connection:
        return [count for (count,) in connection.execute("SELECT attempts FROM spool ORDER BY id")]


def wait_until_in_hand(processor: subprocess.Popen[bytes]) -> None:
    assert processor.stdout is not None
    ready, _, _ = select.select([processor.stdout], [], [], 60)
    assert ready and processor.stdout.readline() == b"in hand\n"


def kill_with_the_poison_in_hand(config: Path) -> None:
    processor = start_processor(config, hang_on="veneno")
    try:
        wait_until_in_hand(processor)
    finally:
        kill(processor)


def test_a_poison_mail_in_a_batch_is_set_aside_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(write_config(tmp_path))
    poison = customer(2, "veneno")
    asyncio.run(spool_mails(settings, [customer(0), customer(1), poison, customer(3), customer(4)]))

    kill_with_the_poison_in_hand(tmp_path / "config.toml")
    # The poison was taken in hand with the four others: each of the five was counted.
    assert attempts(settings.database.path) == [1, 1, 1, 1, 1]
    for _ in range(settings.pipeline.max_attempts - 1):  # then alone: only it counts
        kill_with_the_poison_in_hand(tmp_path / "config.toml")

    monkeypatch.setattr(Parser, "start", parsed_at_once)
    asyncio.run(drain_here(settings))
    rows = spool_rows(settings.database.path)
    assert [row["status"] for row in rows] == ["done", "done", "failed", "done", "done"]
    assert "interrupted 3 times" in rows[2]["error"] and rows[2]["raw"] == poison[1]


def failing_on(subject: str) -> Callable[..., Awaitable[str]]:
    applying = Desk.apply

    async def apply(self: Desk, decision: Any, entry: Any, mail: Any, *rest: Any) -> str:
        if mail.subject == subject:  # a bug in our code that only this mail reaches
            raise ValueError("no se puede con este")
        return await applying(self, decision, entry, mail, *rest)

    return apply


async def test_a_python_error_in_one_mail_of_a_batch_fails_only_that_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(write_config(tmp_path))
    broken = customer(1, "roto")
    reply = ("cliente0@empresa.example", make_mail("Re: [#TK-000001] Caso 0", sender="cliente0@empresa.example"))
    await spool_mails(settings, [customer(0), broken, reply, customer(3)])
    monkeypatch.setattr(Parser, "start", parsed_at_once)
    monkeypatch.setattr(pipeline_module, "BATCH_SECONDS", 60)  # the four in one transaction
    monkeypatch.setattr(Desk, "apply", failing_on("roto"))

    with caplog.at_level(logging.INFO, logger="gateway.desk.pipeline"):
        await drain_here(settings)
    # The first two shared a transaction: the broken one's error undid it, so each went alone.
    assert "a transaction of 2 mails failed" in caplog.text

    rows = spool_rows(settings.database.path)
    assert [row["status"] for row in rows] == ["done", "failed", "done", "done"]
    assert rows[1]["error"] == "ValueError: no se puede con este" and rows[1]["raw"] == broken[1]
    with sqlite3.connect(settings.database.path) as connection:
        messages = connection.execute(
            "SELECT t.number, m.spool_id FROM messages m JOIN tickets t ON t.id = m.ticket_id ORDER BY m.spool_id"
        ).fetchall()
    assert messages == [("TK-000001", 1), ("TK-000001", 3), ("TK-000002", 4)]


async def test_a_mail_in_a_batch_sees_the_ticket_an_earlier_one_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write_config(tmp_path))
    reply = ("cliente0@empresa.example", make_mail("Re: [#TK-000001] Caso 0", sender="cliente0@empresa.example"))
    await spool_mails(settings, [customer(0), reply, customer(2), reply])
    monkeypatch.setattr(Parser, "start", parsed_at_once)
    monkeypatch.setattr(pipeline_module, "BATCH_SECONDS", 60)
    await drain_here(settings)
    with sqlite3.connect(settings.database.path) as connection:
        messages = connection.execute(
            "SELECT t.number, m.spool_id FROM messages m JOIN tickets t ON t.id = m.ticket_id ORDER BY m.spool_id"
        ).fetchall()
    assert messages == [("TK-000001", 1), ("TK-000001", 2), ("TK-000002", 3)]  # the same mail twice: once
