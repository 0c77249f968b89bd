"""IMAP intake against a real Dovecot: a private instance per test on a loopback port,
mail delivered into its mailbox with APPEND, as a desk's Gmail or Microsoft 365 mailbox
would receive it. What is asserted is what a user sees: tickets, and where the message
went on the server."""

from __future__ import annotations

import asyncio
import imaplib
import json
import logging
import os
import pwd
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.runtime.state_file import read_intake_states
from gateway.settings import load_settings
from tests.conftest import MAILBOX, PROJECT, Sink, free_port, make_mail, run_cli, send, write_config

USER, PASSWORD = "soporte", "secreto-de-prueba"
WAIT_SECONDS = 60  # a bound on each wait, far above what it needs

DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = gateway-test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
{users_line}
mail_location = maildir:{mail}/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""


class Dovecot:
    """A private Dovecot: its own config, port, users and maildirs; started and stopped
    with its own commands, as an operator would."""

    def __init__(self, root: Path, mail: Path, tls: bool = False) -> None:
        self.root, self.mail, self.port, self.tls = root, mail, free_port(), tls
        if os.geteuid() == 0:  # Dovecot refuses mail access as root: the mail belongs to nobody
            owner, users_line = pwd.getpwnam("nobody"), ""
        else:
            owner = pwd.getpwuid(os.geteuid())
            users_line = f"default_internal_user = {owner.pw_name}\ndefault_login_user = {owner.pw_name}"
        (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.config = root / "dovecot.conf"
        ssl_lines = "ssl = no"
        if tls:  # a self-signed certificate for 127.0.0.1, made here
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", root / "key.pem", "-out", root / "cert.pem"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            ssl_lines = f"ssl = required\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem"
        self.config.write_text(
            DOVECOT_CONF.format(
                root=root, mail=mail, port=self.port, uid=owner.pw_uid, gid=owner.pw_gid, users_line=users_line,
                ssl=ssl_lines, imap_port=0 if tls else self.port, imaps_port=self.port if tls else 0,
            )
        )  # fmt: skip

    def start(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.config)], check=True, timeout=30)
        for _ in range(600):  # until it answers: bounded by tries, not by a guess of its start-up time
            try:
                self.connect().logout()
                return
            except OSError:
                subprocess.run(["sleep", "0.05"], check=True)
        raise AssertionError(f"dovecot did not start: {(self.root / 'dovecot.log').read_text()}")

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.config), "stop"], check=False, timeout=30, capture_output=True)

    def connect(self) -> imaplib.IMAP4:
        if self.tls:
            context = ssl.create_default_context(cafile=self.root / "cert.pem")
            return imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=30)
        return imaplib.IMAP4("127.0.0.1", self.port, timeout=30)

    def client(self) -> imaplib.IMAP4:
        client = self.connect()
        client.login(USER, PASSWORD)
        return client

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client() as client:
            client.create(folder)
            assert client.append(folder, None, None, raw)[0] == "OK"

    def count(self, folder: str) -> int:
        with self.client() as client:
            status, [exists] = client.select(folder)
            return int(exists) if status == "OK" else 0

    def subjects(self, folder: str) -> list[str]:
        with self.client() as client:
            if client.select(folder)[0] != "OK":
                return []
            _, [found] = client.uid("SEARCH", "ALL")
            subjects = []
            for uid in found.split():
                _, data = client.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                subjects.append(data[0][1].decode().partition(":")[2].strip())
            return subjects


@pytest.fixture
def tls() -> bool:
    """Whether the Dovecot speaks implicit TLS only (port 993's way); parametrised by a test."""
    return False


@pytest.fixture
def dovecot(tls: bool) -> Iterator[Dovecot]:
    if shutil.which("dovecot") is None:
        pytest.skip("dovecot is not installed (.ci/run installs dovecot-imapd)")
    # pytest's tmp_path is private to its owner; Dovecot's processes run as other users.
    root = Path(tempfile.mkdtemp(prefix="gateway-imap-"))
    root.chmod(0o755)
    (root / "mail").mkdir(mode=0o777)
    (root / "mail").chmod(0o777)
    server = Dovecot(root, root / "mail", tls)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def imap_config(tmp_path: Path, server: Dovecot, relay_port: int = 9, **keys: object) -> Path:
    """The test configuration with an [mailboxes.imap] table for the first mailbox."""
    values = {
        "host": "127.0.0.1", "port": server.port, "security": "none", "username": USER,
        "password_env": "GATEWAY_TEST_IMAP_PASSWORD", "done_folder": "Procesados",
        "first_retry_seconds": 0.2, "max_retry_seconds": 1.0, "poll_seconds": 3600, **keys,  # news come by IDLE
    }  # fmt: skip
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
    path = write_config(tmp_path, relay_port=relay_port)
    text = path.read_text().replace('language = "es"\n', f'language = "es"\n\n[mailboxes.imap]\n{table}\n\n', 1)
    path.write_text(text)
    return path


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_IMAP_PASSWORD", PASSWORD)


@pytest.fixture
async def imap_gateway(tmp_path: Path, dovecot: Dovecot, relay: Sink, password: None) -> AsyncIterator[Gateway]:
    running = Gateway(load_settings(imap_config(tmp_path, dovecot, relay.port)))
    await running.start()
    yield running
    await running.stop()


async def until(condition: Callable[[], object], seconds: float = WAIT_SECONDS) -> None:
    """Wait for something a user would see; fails with the condition's name after `seconds`."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def tickets(database: Path) -> list[str]:
    return [str(row[0]) for row in rows(database, "SELECT subject FROM tickets ORDER BY id")]


def state(database: Path) -> dict[str, object]:
    """The source's row, as `status` reads it; empty before its first word."""
    states = read_intake_states(database)
    assert set(states) <= {f"imap:{USER}@127.0.0.1/INBOX"}
    return next(iter(states.values()), {})


async def test_mail_in_the_mailbox_becomes_a_ticket_and_moves_to_the_done_folder(
    imap_gateway: Gateway, dovecot: Dovecot
) -> None:
    database = imap_gateway.settings.database.path
    await until(lambda: state(database).get("connected"))  # now idling: delivery must wake it
    await asyncio.to_thread(dovecot.deliver, make_mail("No imprime la factura", message_id="<imap-1@empresa.example>"))
    await until(lambda: tickets(database) == ["No imprime la factura"])
    await until(lambda: dovecot.subjects("Procesados") == ["No imprime la factura"])
    assert dovecot.subjects("INBOX") == []
    assert state(database)["last_fetch_at"] and state(database)["last_error"] is None
    [(status, mail_from, rcpt_tos, peer)] = rows(database, "SELECT status, mail_from, rcpt_tos, peer FROM spool")
    assert status == "done"
    assert (mail_from, json.loads(str(rcpt_tos))) == ("cliente@empresa.example", [MAILBOX])
    assert peer == f"imap:{USER}@127.0.0.1/INBOX"


async def test_mail_waiting_at_first_start_is_taken_in_batches(
    tmp_path: Path, dovecot: Dovecot, password: None
) -> None:
    for index in range(7):
        await asyncio.to_thread(dovecot.deliver, make_mail(f"Caso {index}"))
    running = Gateway(load_settings(imap_config(tmp_path, dovecot, batch_size=3)))
    await running.start()
    try:
        await until(lambda: len(tickets(running.settings.database.path)) == 7)
        await until(lambda: len(dovecot.subjects("Procesados")) == 7)
    finally:
        await running.stop()
    assert sorted(tickets(running.settings.database.path)) == [f"Caso {index}" for index in range(7)]


async def test_a_server_restart_is_survived(imap_gateway: Gateway, dovecot: Dovecot) -> None:
    database = imap_gateway.settings.database.path
    await until(lambda: state(database).get("connected"))
    await asyncio.to_thread(dovecot.stop)
    await until(lambda: state(database).get("connected") is False)
    assert state(database)["last_error"]
    await asyncio.to_thread(dovecot.start)
    await until(lambda: state(database).get("connected"))
    await asyncio.to_thread(dovecot.deliver, make_mail("Después del reinicio"))
    await until(lambda: tickets(database) == ["Después del reinicio"])


async def test_a_wrong_password_is_told_in_the_log_and_state_and_smtp_keeps_serving(
    tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_IMAP_PASSWORD", "equivocada")
    config = imap_config(tmp_path, dovecot)
    running = Gateway(load_settings(config))
    await running.start()
    database = running.settings.database.path
    try:
        await until(lambda: state(database).get("last_error"))
        assert "login refused for soporte" in str(state(database)["last_error"])
        assert "AUTHENTICATIONFAILED" in str(state(database)["last_error"])
        refused = [r for r in caplog.records if r.levelno == logging.ERROR and "login refused" in r.getMessage()]
        assert len(refused) == 1
        status = await asyncio.to_thread(run_cli, config, "status")
        assert status.returncode == 2  # critical: no mail comes from that mailbox
        [line] = [line for line in status.stdout.decode().splitlines() if line.strip().startswith("imap:")]
        assert "CRITICAL" in line and "AUTHENTICATIONFAILED" in line, line
        await send(running, make_mail("Llegó por SMTP"))
        await until(lambda: tickets(database) == ["Llegó por SMTP"])
    finally:
        await running.stop()
    failures = [r for r in caplog.records if "login refused" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(failures) == 1  # once per outage, however often it was tried


def serve(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "serve"],
        cwd=PROJECT,
        stderr=subprocess.PIPE,
        env={**os.environ, "GATEWAY_SMTP__PORT": str(free_port()), "GATEWAY_PIPELINE__POLL_SECONDS": "0.2"},
    )


async def test_sigkill_between_spooling_and_moving_gives_one_ticket_after_restart(
    tmp_path: Path, dovecot: Dovecot, password: None
) -> None:
    """The done folder cannot be created (a file stands where its maildir would be), so
    every MOVE fails after the spool commit: the state a crash between the two leaves."""
    config = imap_config(tmp_path, dovecot)
    database = load_settings(config).database.path
    await asyncio.to_thread(dovecot.deliver, make_mail("Una sola vez", message_id="<once@empresa.example>"))
    blocker = dovecot.mail / USER / ".Procesados"
    blocker.write_text("not a folder")
    daemon = serve(config)
    try:
        await until(lambda: state(database))  # written once the database is ready
        await until(lambda: tickets(database) == ["Una sola vez"])
        await until(lambda: "move failed" in str(state(database).get("last_error")))
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    assert dovecot.subjects("INBOX") == ["Una sola vez"]  # still there: it was never moved
    blocker.unlink()
    daemon = serve(config)
    try:
        await until(lambda: dovecot.subjects("Procesados") == ["Una sola vez"])
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    assert tickets(database) == ["Una sola vez"]
    assert len(rows(database, "SELECT id FROM spool")) == 1
    assert dovecot.subjects("INBOX") == []


def uidvalidity(server: Dovecot) -> int:
    with server.client() as client:
        _, [answer] = client.status("INBOX", "(UIDVALIDITY)")
        return int(answer.split()[-1].strip(b")"))


async def test_a_new_uidvalidity_reads_the_folder_again_and_keeps_one_ticket(
    tmp_path: Path, dovecot: Dovecot, password: None
) -> None:
    """Stored but not moved (the done folder cannot be made), then the server renumbers the
    folder: the old UID means nothing, the message is read again, and the pipeline knows
    its Message-ID."""
    settings = load_settings(imap_config(tmp_path, dovecot))
    database = settings.database.path
    await asyncio.to_thread(dovecot.deliver, make_mail("Renumerado", message_id="<renum@empresa.example>"))
    blocker = dovecot.mail / USER / ".Procesados"
    blocker.write_text("not a folder")
    running = Gateway(settings)
    await running.start()
    try:
        await until(lambda: tickets(database) == ["Renumerado"])
    finally:
        await running.stop()
    before = uidvalidity(dovecot)
    await asyncio.to_thread(dovecot.stop)
    blocker.unlink()
    for index in (dovecot.mail / USER).glob("dovecot*"):  # its UID list and indexes: new UIDVALIDITY
        index.unlink()
    await asyncio.to_thread(dovecot.start)
    assert uidvalidity(dovecot) != before
    running = Gateway(settings)
    await running.start()
    try:
        await until(lambda: dovecot.subjects("Procesados") == ["Renumerado"])
        await until(lambda: len(rows(database, "SELECT id FROM spool WHERE status = 'done'")) == 2)
    finally:
        await running.stop()
    assert tickets(database) == ["Renumerado"]
    [(outcome,)] = rows(database, "SELECT outcome FROM spool ORDER BY id DESC LIMIT 1")
    assert "duplicate" in str(outcome)


async def test_a_message_the_server_cannot_give_is_kept_failed_and_the_rest_follow(
    tmp_path: Path, dovecot: Dovecot, password: None
) -> None:
    """Dovecot answers a FETCH of a file it cannot read with BYE and hangs up, every time."""
    await asyncio.to_thread(dovecot.deliver, make_mail("Ilegible"))
    [unreadable] = (dovecot.mail / USER / "new").iterdir()
    unreadable.chmod(0)
    await asyncio.to_thread(dovecot.deliver, make_mail("Legible"))
    running = Gateway(load_settings(imap_config(tmp_path, dovecot)))
    await running.start()
    database = running.settings.database.path
    try:
        await until(lambda: tickets(database) == ["Legible"])
        await until(lambda: dovecot.count("Procesados") == 2)  # nothing stays to block the folder
    finally:
        await running.stop()
    [(status, error, size)] = rows(database, "SELECT status, error, size FROM spool WHERE status != 'done'")
    assert (status, size) == ("failed", 0)
    assert "IMAP fetch of UID 1 in INBOX ended the connection 3 times" in str(error)


@pytest.mark.parametrize("tls", [True])
async def test_implicit_tls_verifies_the_servers_certificate(
    tmp_path: Path, dovecot: Dovecot, password: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """security = "tls" checks the certificate against the CA store; SSL_CERT_FILE names
    the test's own (self-signed) one. Without it the handshake fails and says so."""
    settings = load_settings(imap_config(tmp_path, dovecot, security="tls"))
    database = settings.database.path
    running = Gateway(settings)
    await running.start()
    try:
        await until(lambda: "CERTIFICATE_VERIFY_FAILED" in str(state(database).get("last_error")))
    finally:
        await running.stop()
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.root / "cert.pem"))
    running = Gateway(settings)
    await running.start()
    try:
        await until(lambda: state(database).get("connected"))
        await asyncio.to_thread(dovecot.deliver, make_mail("Por TLS"))
        await until(lambda: tickets(database) == ["Por TLS"])
    finally:
        await running.stop()
