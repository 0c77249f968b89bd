"""What an admin does to a running desk: purge what retention no longer keeps, back the
database up while mail flows, and send deferred mail now."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from gateway.clock import FixedClock, SystemClock
from gateway.daemon import Gateway
from gateway.settings import LimitSettings, Settings
from gateway.storage.spool_file import spool_path
from tests.conftest import MAILBOX, Sink, crlf, make_mail, run_cli, send, send_blocking, spool_rows

BIG_BODY = "Detalle del problema. " * 20_000  # ~440 KB: its pages are worth handing back


def with_two_files(subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "cliente@empresa.example", MAILBOX, subject
    message.set_content("Adjunto dos archivos.")
    for name in ("uno.pdf", "dos.pdf"):
        message.add_attachment(b"%PDF-1.4 " + name.encode(), maintype="application", subtype="pdf", filename=name)
    return crlf(message.as_bytes())


async def test_purge_deletes_old_raw_mail_and_sent_mail_and_keeps_tickets_and_failed_mail(
    settings: Settings, config_path: Path, relay: Sink
) -> None:
    settings = settings.model_copy(update={"limits": LimitSettings(max_attachments=1)})
    clock = FixedClock(SystemClock().now() - timedelta(days=100))
    gateway = Gateway(settings, clock)
    await gateway.start()
    try:
        await send(gateway, make_mail("Viejo", body=BIG_BODY, sender="ana@empresa.example"))
        await send(gateway, with_two_files("Demasiados archivos"))  # kept raw as failed
        await gateway.drain()
        clock.advance(days=100)
        await send(gateway, make_mail("Nuevo", sender="beto@empresa.example"))
        await gateway.drain()
    finally:
        await gateway.stop()
    database = settings.database.path
    assert [row["status"] for row in spool_rows(database)] == ["done", "failed", "done"]
    outbox_before = json.loads(run_cli(config_path, "outbox", "list", "--json").stdout)

    dry = run_cli(config_path, "purge", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr.decode()
    would = json.loads(dry.stdout)
    assert (would["inbound_mail"], would["dry_run"]) == (1, True)
    assert would["outbox_mail"] >= 1
    assert len(json.loads(run_cli(config_path, "outbox", "list", "--json").stdout)) == len(outbox_before)

    purged = run_cli(config_path, "purge")
    assert purged.returncode == 0, purged.stderr.decode()
    assert "purged 1 inbound mail" in purged.stdout.decode()
    assert f"purged {would['outbox_mail']} outbox mail" in purged.stdout.decode()
    # The old mail's raw bytes are gone, its envelope stays with the ticket's message;
    # failed mail waits for a retry; recent mail and every ticket stay.
    assert [row["id"] for row in spool_rows(database)] == [2, 3]
    assert run_cli(config_path, "inbound", "show", "1").returncode == 1
    [first] = json.loads(run_cli(config_path, "inbound", "list", "--json", "--status", "done").stdout)[:1]
    assert first["id"] == 1
    tickets = json.loads(run_cli(config_path, "tickets", "list", "--json").stdout)
    assert sorted(ticket["subject"] for ticket in tickets) == ["Nuevo", "Viejo"]
    outbox_after = json.loads(run_cli(config_path, "outbox", "list", "--json").stdout)
    assert len(outbox_after) == len(outbox_before) - would["outbox_mail"]
    assert "beto@empresa.example" in {address for entry in outbox_after for address in entry["recipients"]}
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA freelist_count").fetchone()[0] == 0  # handed back, not kept
    assert "handed back 0 free pages" not in purged.stdout.decode()  # the old mail's ~440 KB

    again = json.loads(run_cli(config_path, "purge", "--json").stdout)
    assert (again["inbound_mail"], again["outbox_mail"]) == (0, 0)


async def test_backup_while_mail_flows_through_the_daemon_is_consistent(
    settings: Settings, config_path: Path, relay: Sink, tmp_path: Path
) -> None:
    gateway = Gateway(settings, separate_process=True)
    await gateway.start()
    flowing = threading.Event()
    stop = threading.Event()

    def keep_sending() -> None:
        index = 0
        while not stop.is_set():
            send_blocking(gateway.port, make_mail(f"caso {index}", sender=f"c{index}@empresa.example"), [MAILBOX])
            index += 1
            flowing.set()

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        await asyncio.to_thread(flowing.wait)
        assert await relay.handler.wait_for_mail_to("c0@empresa.example", seconds=30)  # tickets exist
        copy = tmp_path / "backup" / "copia.db"
        copy.parent.mkdir()
        result = await asyncio.to_thread(run_cli, config_path, "backup", str(copy))
        assert result.returncode == 0, result.stderr.decode()
        refused = await asyncio.to_thread(run_cli, config_path, "backup", str(copy))
        forced = await asyncio.to_thread(run_cli, config_path, "backup", str(copy), "--force")
    finally:
        stop.set()
        await asyncio.to_thread(sender.join)
        await gateway.stop()
    assert refused.returncode == 2 and b"--force" in refused.stderr
    assert forced.returncode == 0, forced.stderr.decode()
    assert (copy.stat().st_mode & 0o777) == 0o600  # every customer's mail and the signing secret
    with sqlite3.connect(copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        subjects = {row[0] for row in connection.execute("SELECT subject FROM tickets")}
        assert "caso 0" in subjects
        assert connection.execute("SELECT value FROM meta WHERE name = 'secret'").fetchone() is not None
    assert not Path(f"{copy}-wal").exists()
    # The raw mail is in the spool file, copied beside the backup after the desk: every
    # mail the copied desk knows has its raw mail there.
    with sqlite3.connect(copy) as desk, sqlite3.connect(spool_path(copy)) as spool:
        assert spool.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        known = {spool_id for (spool_id,) in desk.execute("SELECT id FROM spool")}
        raw = {spool_id for (spool_id,) in spool.execute("SELECT id FROM spool_raw")}
    assert known and known <= raw
    assert (spool_path(copy).stat().st_mode & 0o777) == 0o600


async def test_outbox_retry_all_sends_deferred_mail_now_through_the_running_relay(
    settings: Settings, config_path: Path, relay: Sink
) -> None:
    relay.handler.rcpt_replies = ["451 4.3.0 try later"]  # the first notification is deferred for 60 s
    gateway = Gateway(settings, separate_process=True)
    await gateway.start()
    try:
        await send(gateway, make_mail("Diferido", sender="ana@empresa.example"))
        deferred = await asyncio.to_thread(wait_for_deferred, config_path)
        result = await asyncio.to_thread(run_cli, config_path, "outbox", "retry", "--all")
        assert result.returncode == 0, result.stderr.decode()
        assert f"{deferred['id']}: due now" in result.stdout.decode()
        # first_retry_seconds is 60: only the retry can bring it this soon.
        assert await relay.handler.wait_until(lambda: len(relay.received) >= 2, seconds=20)
    finally:
        await gateway.stop()
    recipients = {address for mail in relay.received for address in mail.rcpt_tos}
    assert set(deferred["recipients"]) <= recipients


def wait_for_deferred(config: Path) -> dict[str, object]:
    """The deferred notification, once the relay process has had its 451 (its log says so
    only in its own process: the outbox is what an admin looks at)."""
    while True:
        for entry in json.loads(run_cli(config, "outbox", "list", "--json").stdout):
            if entry["status"] == "queued" and entry["attempts"] == 1:
                return dict(entry)
