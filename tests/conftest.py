"""Shared fixtures: a real gateway on an ephemeral port over a real SQLite file.

Mail is sent with the standard library's smtplib (in a thread, since the gateway runs on
the test's event loop) exactly as an MTA would send it: CRLF line endings.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import smtplib
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from gateway.daemon import Gateway
from gateway.settings import SecuritySettings, Settings, load_settings
from gateway.storage.spool_file import attach

PROJECT = Path(__file__).resolve().parents[1]
SHARED_MAIL = PROJECT.parent / "shared" / "mail"
MAILBOX = "soporte.latam@estela.example"
SECOND_MAILBOX = "ventas@estela.example"

TEST_CONFIG = """
[smtp]
host = "127.0.0.1"
port = 0
protocol = "{protocol}"
max_message_size = {max_size}
hostname = "mx.test.example"

[database]
path = "{db}"

[tickets]
number_prefix = "TK"

[logging]
level = "INFO"

[outbound]
host = "127.0.0.1"
port = {relay_port}
timeout_seconds = 5
first_retry_seconds = 60
max_retry_seconds = 3600
give_up_hours = 48

[security]
trusted_authserv_ids = ["mx.test.example"]

[agents]
notify_address = "agentes@estela.example"
addresses = ["csoto@estela.example"]

[[mailboxes]]
address = "soporte.latam@estela.example"
name = "Soporte LATAM"
country = "CL"
brand = "Estela"
product = "Estela ERP"
default_type = "request"
default_priority = "medium"
language = "es"

[[mailboxes]]
address = "ventas@estela.example"
country = "PE"
brand = "Estela"
product = "Estela POS"
default_type = "question"
default_priority = "low"
"""


def write_config(directory: Path, protocol: str = "smtp", max_size: int = 1_000_000, relay_port: int = 9) -> Path:
    """A test configuration; the default relay port (discard) has nobody listening."""
    path = directory / "config.toml"
    text = TEST_CONFIG.format(protocol=protocol, max_size=max_size, db=directory / "gateway.db", relay_port=relay_port)
    path.write_text(text)
    return path


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    mail_options: list[str] = field(default_factory=list)  # e.g. SMTPUTF8

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SinkHandler:
    """A recording relay: keeps what it is sent; can be told how to answer the next RCPTs."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.rcpt_replies: list[str] = []
        self._arrived = asyncio.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        mail.mail_options = list(envelope.mail_options)
        self.received.append(mail)
        self._arrived.set()
        return "250 2.0.0 Ok: queued as sink"

    def to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.received if address in mail.rcpt_tos]

    async def wait_for_mail_to(self, address: str, seconds: float) -> list[ReceivedMail]:
        """What came for `address`, once something has (or, after `seconds`, nothing)."""
        await self.wait_until(lambda: bool(self.to(address)), seconds)
        return self.to(address)

    async def wait_until(self, condition: Callable[[], bool], seconds: float) -> bool:
        """Wait for mail until `condition()` holds (True) or `seconds` have passed (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not condition():
                    self._arrived.clear()
                    await self._arrived.wait()
        return condition()


class Sink:
    """`smtputf8`: whether the sink offers SMTPUTF8 (RFC 6531), as most relays now do."""

    def __init__(self, port: int = 0, smtputf8: bool = False) -> None:
        self.handler = SinkHandler()
        self.port = port
        self.smtputf8 = smtputf8
        self.server: asyncio.Server | None = None

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(self.handler, hostname="relay.test.example", enable_SMTPUTF8=self.smtputf8),
            "127.0.0.1",
            self.port,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def relay() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.stop()


@pytest.fixture
def config_path(tmp_path: Path, relay: Sink) -> Path:
    return write_config(tmp_path, relay_port=relay.port)


@pytest.fixture
def security() -> dict[str, object]:
    """[security] keys set beyond TEST_CONFIG's; a test overrides it with parametrize."""
    return {}


@pytest.fixture
def settings(config_path: Path, security: dict[str, object]) -> Settings:
    loaded = load_settings(config_path)
    changed = SecuritySettings.model_validate({**dict(loaded.security), **security})
    return loaded.model_copy(update={"security": changed})


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    running = Gateway(settings)
    await running.start()
    yield running
    await running.stop()


def sample(name: str) -> bytes:
    """A file of ../shared/mail as it arrives over SMTP (CRLF line endings)."""
    path = SHARED_MAIL / name
    if not path.exists():
        pytest.fail(f"sample mail missing: {path} (shared/ must sit beside the project)")
    return crlf(path.read_bytes())


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send_blocking(port: int, raw: bytes, recipients: list[str], sender: str = "sender@client.example") -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, recipients, raw)


async def send(
    gateway: Gateway, raw: bytes, recipients: list[str] | None = None, sender: str = "sender@client.example"
) -> dict:
    """Send one mail over SMTP; raises smtplib's exceptions on a refusal."""
    return await asyncio.to_thread(send_blocking, gateway.port, raw, recipients or [MAILBOX], sender)


def make_mail(
    subject: str,
    body: str = "Hola, tenemos un problema.",
    sender: str = "Cliente <cliente@empresa.example>",
    to: str = MAILBOX,
    cc: str | None = None,
    message_id: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    from email.message import EmailMessage
    from email.utils import make_msgid

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="empresa.example")
    for key, value in (extra_headers or {}).items():
        message[key] = value
    message.set_content(body)
    return crlf(message.as_bytes())


def run_cli(config: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run the real command line, `python -m gateway`, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        cwd=PROJECT,
    )


def cli_json(config: Path, *args: str) -> object:
    result = run_cli(config, *args)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def spool_rows(database: Path) -> list[sqlite3.Row]:
    """Every spooled mail with what became of it: the raw mail is in the spool file."""
    with contextlib.closing(sqlite3.connect(database.resolve().as_uri(), uri=True)) as connection:
        attach(connection, database)
        connection.row_factory = sqlite3.Row
        return connection.execute(
            "SELECT s.id, s.status, s.outcome, s.error, r.raw FROM inbound s JOIN intake.spool_raw r USING (id)"
            " ORDER BY s.id"
        ).fetchall()
