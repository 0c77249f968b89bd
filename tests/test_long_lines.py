"""Lines longer than RFC 5321's 1,000 bytes (§4.5.3.1.6): HTML generators and ERPs write
them, Postfix and Exim take them, and so do we, bounded only by max_message_size, keeping
the bytes exactly as they came."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, make_mail, run_cli, send, spool_rows


def mail_with_long_lines(*lengths: int) -> bytes:
    head = b"From: Cliente <cliente@empresa.example>\r\nTo: soporte.latam@estela.example\r\nSubject: factura\r\n"
    head += b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    # A leading "." on a long line: smtplib dot-stuffs it, the listener must unstuff it.
    lines = [b"." + (b"<td>fila \xc3\xb1</td>" * length)[: length - 1] for length in lengths]
    return head + b"\r\n".join([b"<p>Adjunto la factura:</p>", *lines, b"<p>Saludos</p>"]) + b"\r\n"


async def test_lines_of_5_000_and_200_000_bytes_are_accepted_and_kept_as_they_came(
    gateway: Gateway, config_path: Path
) -> None:
    raw = mail_with_long_lines(5_000, 200_000)
    assert await send(gateway, raw) == {}
    [row] = spool_rows(gateway.settings.database.path)
    assert row["raw"] == raw
    shown = run_cli(config_path, "inbound", "show", str(row["id"]))
    assert (shown.returncode, shown.stdout) == (0, raw)
    await gateway.drain()
    [tk] = await gateway.pipeline.queries.list_tickets()
    assert tk["subject"] == "factura"


def send_without_size(port: int, raw: bytes) -> tuple[int, bytes]:
    """MAIL FROM without SIZE= (RFC 1870), as many clients send it: the limit is found in DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("sender@client.example")
        client.rcpt(MAILBOX)
        return client.data(raw)


async def test_a_long_line_past_max_message_size_is_refused_with_552(gateway: Gateway) -> None:
    raw = mail_with_long_lines(gateway.settings.smtp.max_message_size + 10)
    code, _ = await asyncio.to_thread(send_without_size, gateway.port, raw)
    assert code == 552
    assert spool_rows(gateway.settings.database.path) == []
    assert await send(gateway, make_mail("después")) == {}  # the listener goes on
