"""The daemon as a process and as a protocol peer: LMTP, crash recovery, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.daemon import Gateway
from gateway.inbound.listener import InboundHandler, start_listener
from gateway.inbound.spool import Spool
from gateway.settings import Settings, load_settings
from gateway.storage.database import Database
from tests.conftest import MAILBOX, PROJECT, SECOND_MAILBOX, Sink, make_mail, send_blocking, spool_rows, write_config
from tests.support.daemon import spool_statuses, start_daemon, wait_for_log


async def lmtp_exchange(port: int, recipients: list[str], raw: bytes) -> list[bytes]:
    """One LMTP transaction by hand: smtplib's LMTP reads only one reply after DATA."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        lines = [await reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(await reader.readline())
        return lines[-1]

    await reply()  # greeting
    replies = []
    for command in [b"LHLO client.example", b"MAIL FROM:<c@empresa.example>"] + [
        b"RCPT TO:<%s>" % address.encode() for address in recipients
    ]:
        writer.write(command + b"\r\n")
        replies.append(await reply())
    writer.write(b"DATA\r\n")
    await reply()
    writer.write(raw + b".\r\n")
    accepted = sum(r.startswith(b"250") for r in replies[2:])
    data_replies = [await reply() for _ in range(accepted)]
    writer.write(b"QUIT\r\n")
    await reply()
    writer.close()
    return replies[2:] + data_replies


async def test_lmtp_answers_once_per_recipient(tmp_path: Path) -> None:
    gateway = Gateway(load_settings(write_config(tmp_path, protocol="lmtp")))
    await gateway.start()
    try:
        replies = await lmtp_exchange(
            gateway.port, [MAILBOX, "nadie@estela.example", SECOND_MAILBOX], make_mail("por LMTP")
        )
        await gateway.drain()
        tickets = await gateway.pipeline.queries.list_tickets()
    finally:
        await gateway.stop()
    rcpt_ok, rcpt_unknown, rcpt_second, data_first, data_second = replies
    assert rcpt_ok.startswith(b"250") and rcpt_second.startswith(b"250")
    assert rcpt_unknown.startswith(b"550 5.1.1")
    assert data_first.startswith(b"250 2.0.0") and data_second.startswith(b"250 2.0.0")
    assert len(tickets) == 1


async def test_mail_answered_250_survives_sigkill_and_is_processed_after_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process, port, *_ = start_daemon(config)
    mails = [make_mail(f"caso {index}", message_id=f"<kill-{index}@empresa.example>") for index in range(40)]
    try:
        for mail in mails:
            assert send_blocking(port, mail, [MAILBOX]) == {}
    finally:
        process.send_signal(signal.SIGKILL)  # right after the last 250: no chance to finish
        process.wait()

    rows = spool_rows(tmp_path / "gateway.db")
    assert [row["raw"] for row in rows] == mails  # every 250 was durable

    restarted = Gateway(load_settings(config))
    await restarted.start()  # the same start-up `serve` runs
    try:
        await restarted.drain()
        tickets = await restarted.pipeline.queries.list_tickets()
    finally:
        await restarted.stop()
    assert len(tickets) == 40
    assert {row["status"] for row in spool_rows(tmp_path / "gateway.db")} == {"done"}


def test_sigterm_stops_cleanly_with_exit_0(tmp_path: Path) -> None:
    process, port, *_ = start_daemon(write_config(tmp_path))
    assert send_blocking(port, make_mail("antes de apagar"), [MAILBOX]) == {}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    statuses = spool_statuses(tmp_path / "gateway.db")
    assert statuses in (["done"], ["queued"])  # finished, or left safely for the next start


@pytest.mark.slow
def test_serve_processes_mail_in_a_child_process_started_again_when_it_dies(tmp_path: Path) -> None:
    daemon = start_daemon(write_config(tmp_path))
    process, processor_pid = daemon.process, daemon.children["processor"]
    try:
        assert processor_pid != process.pid
        assert send_blocking(daemon.port, make_mail("primero"), [MAILBOX]) == {}
        wait_for_log(daemon, rb"inbound 1 .*: new ticket")
        assert spool_statuses(tmp_path / "gateway.db") == ["done"]

        os.kill(processor_pid, signal.SIGKILL)
        assert send_blocking(daemon.port, make_mail("mientras tanto"), [MAILBOX]) == {}  # the listener carries on
        wait_for_log(daemon, rb"inbound 2 .*: new ticket")
        assert spool_statuses(tmp_path / "gateway.db") == ["done", "done"]  # a new processor took it
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.mark.slow
async def test_serve_relays_from_a_process_of_its_own_rung_when_notifications_are_queued(
    tmp_path: Path, relay: Sink
) -> None:
    # Both processes would otherwise look only every 30 s: a prompt delivery is the bells'.
    slow_polls = {"GATEWAY_PIPELINE__POLL_SECONDS": "30"}
    process, port, children, _ = await asyncio.to_thread(
        start_daemon, write_config(tmp_path, relay_port=relay.port), slow_polls
    )
    try:
        assert len({process.pid, children["processor"], children["relay"]}) == 3
        await asyncio.to_thread(send_blocking, port, make_mail("primero", sender="ana@empresa.example"), [MAILBOX])
        assert await relay.handler.wait_for_mail_to("ana@empresa.example", seconds=15)

        os.kill(children["relay"], signal.SIGKILL)
        await asyncio.to_thread(send_blocking, port, make_mail("segundo", sender="beto@empresa.example"), [MAILBOX])
        assert await relay.handler.wait_for_mail_to("beto@empresa.example", seconds=15)  # by the relay started again
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0


def test_a_mail_interrupted_too_often_is_set_aside(tmp_path: Path) -> None:
    import sqlite3

    config = write_config(tmp_path)
    settings = load_settings(config)

    async def scenario() -> list[str]:
        gateway = Gateway(settings)
        await gateway.start()
        await asyncio.to_thread(send_blocking, gateway.port, make_mail("veneno"), [MAILBOX])
        await gateway.stop()
        return [row["status"] for row in spool_rows(settings.database.path)]

    asyncio.run(scenario())
    # Simulate a mail that crashed the process in the middle of processing three times.
    with sqlite3.connect(settings.database.path) as connection:
        connection.execute("UPDATE spool SET status = 'processing', attempts = 3")

    async def restart() -> None:
        gateway = Gateway(settings)
        await gateway.start()
        await gateway.drain()
        await gateway.stop()

    asyncio.run(restart())
    [row] = spool_rows(settings.database.path)
    assert row["status"] == "failed" and "interrupted 3 times" in row["error"]
    assert os.path.exists(settings.database.path)


# The processor `serve` runs, in a process of its own, but its pipeline's DKIM key look-up
# never answers: an agent's DKIM-signed reply stays in hand until the process is killed
# (before [security] dkim_timeout_seconds ends the wait).
PROCESSOR_STUCK_ON_DKIM = """
import asyncio, sys, threading
from pathlib import Path
from gateway.clock import SystemClock
from gateway.processor import Processor
from gateway.settings import load_settings

def never_answers(name, timeout=5):
    print("in hand", flush=True)
    threading.Event().wait()

async def main():
    processor = Processor(load_settings(Path(sys.argv[1])), SystemClock(), outbox_bell=lambda: None)
    await processor.start()
    processor.pipeline.dkim_dns = never_answers  # read when a mail gets that far, long after
    await asyncio.Event().wait()

asyncio.run(main())
"""
DKIM_SIGNATURE = (
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=estela.example; s=sel;\r\n"
    b" h=from:to:subject; bh=AAAA; b=AAAA\r\n"
)


async def spool_with_no_processor(settings: Settings, mails: list[bytes]) -> None:
    """Send over SMTP to the real listener while no processor runs: the mail waits, queued."""
    database = await Database.open(settings.database.path)
    server = await start_listener(settings, InboundHandler(settings, Spool(database, SystemClock()), lambda: None))
    try:
        port = server.sockets[0].getsockname()[1]
        for mail in mails:
            assert await asyncio.to_thread(send_blocking, port, mail, [MAILBOX]) == {}
    finally:
        server.close()
        await server.wait_closed()
        await database.close()


def kill_processor_with_the_poison_in_hand(config: Path) -> None:
    processor = subprocess.Popen(
        [sys.executable, "-c", PROCESSOR_STUCK_ON_DKIM, str(config)], stdout=subprocess.PIPE, cwd=PROJECT
    )
    assert processor.stdout is not None
    try:
        ready, _, _ = select.select([processor.stdout], [], [], 60)
        assert ready and processor.stdout.readline() == b"in hand\n"
    finally:
        processor.kill()
        processor.wait()
        processor.stdout.close()


def test_only_the_mail_in_hand_counts_an_interruption_not_the_mail_claimed_behind_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[security]\n", "[security]\nverify_dkim = true\n"))
    settings = load_settings(config)
    opener = make_mail("veneno")  # TK-000001, so that the agent's signed mail is a reply, worth a look-up
    poison = DKIM_SIGNATURE + make_mail("Re: [#TK-000001] veneno", sender="Carla Soto <csoto@estela.example>")
    innocent = [make_mail(f"inocente {index}") for index in range(3)]
    asyncio.run(spool_with_no_processor(settings, [opener, poison, *innocent]))

    for _ in range(settings.pipeline.max_attempts):  # the poison's look-up hangs; the operator kills
        kill_processor_with_the_poison_in_hand(config)

    async def restart() -> list[str]:
        gateway = Gateway(settings)
        await gateway.start()
        try:
            await gateway.drain()
            return sorted(str(ticket["subject"]) for ticket in await gateway.pipeline.queries.list_tickets())
        finally:
            await gateway.stop()

    assert asyncio.run(restart()) == ["inocente 0", "inocente 1", "inocente 2", "veneno"]
    rows = spool_rows(settings.database.path)
    assert [row["status"] for row in rows] == ["done", "failed", "done", "done", "done"]
    assert "interrupted 3 times" in rows[1]["error"]
