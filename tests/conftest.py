"""Shared fixtures: a real gateway on an ephemeral port over a real SQLite file.

Mail is sent with the standard library's smtplib (in a thread, since the gateway runs on
the test's event loop) exactly as an MTA would send it: CRLF line endings.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.settings import Settings, load_settings

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
level = "DEBUG"

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


def write_config(directory: Path, protocol: str = "smtp", max_size: int = 1_000_000) -> Path:
    path = directory / "config.toml"
    path.write_text(TEST_CONFIG.format(protocol=protocol, max_size=max_size, db=directory / "gateway.db"))
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def settings(config_path: Path) -> Settings:
    return load_settings(config_path)


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
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute("SELECT id, status, outcome, error, raw FROM spool ORDER BY id").fetchall()
