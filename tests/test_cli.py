"""The command line as an operator and an MTA use it: `python -m gateway …`."""

from __future__ import annotations

import asyncio
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.inbound.spool import Spool
from gateway.settings import load_settings
from gateway.storage.database import Database
from tests.conftest import cli_json, make_mail, run_cli, sample, write_config

TICKET_KEYS = {
    "number", "subject", "status", "priority", "type", "requester", "cc", "mailbox", "country",
    "brand", "product", "created_at", "updated_at", "message_count",
}  # fmt: skip
MESSAGE_KEYS = {"message_id", "from", "to", "cc", "date", "direction", "body", "attachments"}


def ingest(config: Path, raw: bytes, *recipients: str) -> tuple[int, str]:
    args = [arg for address in recipients for arg in ("--recipient", address)]
    result = run_cli(config, "ingest", "--sender", "cliente@empresa.example", *args, stdin=raw)
    return result.returncode, (result.stdout + result.stderr).decode()


def test_ingest_stores_and_tickets_list_json_has_every_field(config_path: Path) -> None:
    code, output = ingest(config_path, sample("01-new-utf8-cc.eml"), "soporte.latam@estela.example")
    assert code == 0, output
    assert "queued as 1: done" in output
    [ticket] = cli_json(config_path, "tickets", "list", "--json")
    assert set(ticket) >= TICKET_KEYS
    assert ticket["number"] == "TK-000001"
    assert ticket["cc"] == ["jnunez@distribuidora-andes.example"]
    # "Tipo: Incidente" and "Prioridad: Urgente" lines in the mail set the fields
    assert (ticket["status"], ticket["priority"], ticket["type"]) == ("open", "urgent", "incident")
    assert (ticket["fiscal_id"], ticket["fiscal_id_valid"]) == ("76.086.428-5", True)
    assert (ticket["company"], ticket["phone"]) == ("Distribuidora Andes SpA", "+56 2 2345 6789")


def test_tickets_show_json_has_messages_and_attachments(config_path: Path) -> None:
    ingest(config_path, sample("02-new-outlook-html-only-cp1252-attachment.eml"), "soporte.latam@estela.example")
    ticket = cli_json(config_path, "tickets", "show", "tk-000001", "--json")
    assert isinstance(ticket, dict)
    [message] = ticket["messages"]
    assert set(message) >= MESSAGE_KEYS
    assert message["from"] == "amunoz@logistica-sur.example"
    [attachment] = message["attachments"]
    assert set(attachment) == {"id", "filename", "content_type", "size", "sha256"}  # id: attachments get ID
    assert len(attachment["sha256"]) == 64


def test_tickets_list_filters_by_status_and_prints_spanish_labels(config_path: Path) -> None:
    ingest(config_path, make_mail("Caso uno"), "soporte.latam@estela.example")
    assert cli_json(config_path, "tickets", "list", "--status", "closed", "--json") == []
    result = run_cli(config_path, "tickets", "list")
    assert result.returncode == 0
    assert "TK-000001" in result.stdout.decode() and "Abierto" in result.stdout.decode()


def test_tickets_show_unknown_number_is_an_error(config_path: Path) -> None:
    ingest(config_path, make_mail("Caso uno"), "soporte.latam@estela.example")
    result = run_cli(config_path, "tickets", "show", "TK-999999")
    assert result.returncode == 1 and b"no ticket TK-999999" in result.stderr


def test_ingest_unknown_recipient_exits_67_and_stores_nothing(config_path: Path) -> None:
    code, output = ingest(config_path, make_mail("hola"), "nadie@estela.example")
    assert code == 67 and "unknown recipient" in output
    assert not (config_path.parent / "gateway.db").exists()  # refused before anything was opened


def test_ingest_locked_database_exits_75(config_path: Path, tmp_path: Path) -> None:
    ingest(config_path, make_mail("crea la base"), "soporte.latam@estela.example")
    blocker = sqlite3.connect(tmp_path / "gateway.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        code, output = ingest(config_path, make_mail("hola"), "soporte.latam@estela.example")
    finally:
        blocker.rollback()
        blocker.close()
    assert code == 75 and "try again later" in output


def test_inbound_list_and_retry(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "cliente@empresa.example", "soporte.latam@estela.example", "logs"
    mail.set_content("Adjunto los registros.")
    for name in ("uno.log", "dos.log"):
        mail.add_attachment(b"registro", maintype="text", subtype="plain", filename=name)
    monkeypatch.setenv("GATEWAY_LIMITS__MAX_ATTACHMENTS", "1")
    code, _ = ingest(config_path, mail.as_bytes(), "soporte.latam@estela.example")
    assert code == 0  # accepted and kept, even though it breaks a limit
    listing = run_cli(config_path, "inbound", "list", "--status", "failed").stdout.decode()
    assert "failed" in listing and "2 attachments, over limits.max_attachments = 1" in listing

    monkeypatch.setenv("GATEWAY_LIMITS__MAX_ATTACHMENTS", "10")  # the admin raises the limit
    retried = run_cli(config_path, "inbound", "retry", "--all")
    assert retried.returncode == 0 and b"1: done" in retried.stdout
    assert len(cli_json(config_path, "tickets", "list", "--json")) == 1


def test_inbound_show_gives_back_the_raw_bytes(config_path: Path) -> None:
    raw = sample("14-broken-mime.eml")
    ingest(config_path, raw, "soporte.latam@estela.example")
    assert run_cli(config_path, "inbound", "show", "1").stdout == raw
    assert run_cli(config_path, "inbound", "show", "2").returncode == 1


def test_inbound_retry_finds_mail_intake_kept_as_failed_while_no_daemon_runs(config_path: Path) -> None:
    """An IMAP message intake could not take whole is kept raw as failed in the spool file;
    `inbound list` shows it, and `inbound retry` must find it, daemon or not."""

    async def keep_as_failed() -> None:
        database = await Database.open(load_settings(config_path).database.path)
        try:
            spool = Spool(database, SystemClock())
            along = ("INSERT INTO imap_seen (mailbox, folder, uidvalidity, uid, spool_id) VALUES (?, ?, ?, ?, ?)",
                     ("soporte", "INBOX", 1, 7))  # fmt: skip
            envelope = ("cliente@empresa.example", ["soporte.latam@estela.example"], "imap")
            await spool.add_along(*envelope, make_mail("Cortado"), along, error="the server's copy ended early")
        finally:
            await database.close()

    asyncio.run(keep_as_failed())
    assert "the server's copy ended early" in run_cli(config_path, "inbound", "list").stdout.decode()
    retried = run_cli(config_path, "inbound", "retry", "1")
    assert retried.returncode == 0, retried.stderr.decode()
    assert b"1: done" in retried.stdout
    assert len(cli_json(config_path, "tickets", "list", "--json")) == 1


def test_inbound_retry_needs_ids_or_all(config_path: Path) -> None:
    result = run_cli(config_path, "inbound", "retry")
    assert result.returncode == 2 and b"give spool IDs or --all" in result.stderr
    result = run_cli(config_path, "inbound", "retry", "42")
    assert result.returncode == 1 and b"not failed or not found: 42" in result.stderr


READ_ONLY_COMMANDS = [
    ("tickets", "list"), ("tickets", "show", "TK-000001"), ("tickets", "export"),
    ("inbound", "list"), ("inbound", "show", "1"), ("outbox", "list"), ("outbox", "show", "1"),
]  # fmt: skip


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_read_only_command_on_a_mistyped_path_creates_nothing_and_says_so(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = write_config(tmp_path)
    mistyped = tmp_path / "gatway" / "gateway.db"
    config.write_text(config.read_text().replace(str(tmp_path / "gateway.db"), str(mistyped)))
    before = sorted(tmp_path.rglob("*"))
    result = run_cli(config, *command)
    assert result.returncode == 66  # EX_NOINPUT
    assert f"ticket-gateway: no database at {mistyped} (check [database] path)" in result.stderr.decode()
    assert sorted(tmp_path.rglob("*")) == before  # no directory, database, lock file


def test_a_read_only_command_on_a_file_that_is_not_ours_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "gateway.db").write_bytes(b"")  # an empty SQLite database: no tables
    result = run_cli(config, "tickets", "list")
    assert result.returncode == 66 and b"is not a ticket-gateway database" in result.stderr
    (tmp_path / "gateway.db").write_text("notas del turno\n" * 100)
    result = run_cli(config, "inbound", "list")
    assert result.returncode == 66 and b"is not a ticket-gateway database" in result.stderr


@pytest.mark.slow
def test_read_only_commands_read_an_existing_database_and_write_nothing(config_path: Path) -> None:
    ingest(config_path, make_mail("Caso uno"), "soporte.latam@estela.example")
    database = config_path.parent / "gateway.db"
    before = _dump(database)
    for command in READ_ONLY_COMMANDS:
        result = run_cli(config_path, *command)
        assert result.returncode == 0, (command, result.stderr.decode())
    assert b"TK-000001" in run_cli(config_path, "tickets", "export").stdout
    assert b"Caso uno" in run_cli(config_path, "inbound", "show", "1").stdout
    assert _dump(database) == before


def _dump(database: Path) -> list[str]:
    connection = sqlite3.connect(database)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def test_inbound_list_shows_what_was_decided(config_path: Path) -> None:
    ingest(config_path, make_mail("Caso uno"), "soporte.latam@estela.example")
    ingest(config_path, make_mail("Re: [#TK-000001] Caso uno", body="Sigue igual."), "soporte.latam@estela.example")
    listing = run_cli(config_path, "inbound", "list").stdout.decode()
    assert "decided: new ticket" in listing
    assert "decided: customer reply on TK-000001; notify customer_reply to agents" in listing
