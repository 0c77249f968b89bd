"""Property-based: arbitrary and mutated mail sent over SMTP never brings the daemon down,
and every mail it accepted is a ticket entry or kept raw with a reason."""

from __future__ import annotations

import asyncio
import base64
import os
import smtplib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.daemon import Gateway
from gateway.parsing.mail import parse_mail
from gateway.settings import load_settings
from gateway.storage.spool_file import spool_path
from tests.conftest import MAILBOX, SHARED_MAIL, crlf, write_config
from tests.support.parsing import strings, surrogate_or_nul

SAMPLES = [crlf(path.read_bytes()) for path in sorted(SHARED_MAIL.glob("*.eml"))]
HEADER_NAMES = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Content-Type",
                "Content-Transfer-Encoding", "Auto-Submitted", "Date", "MIME-Version"]  # fmt: skip


class RunningGateway:
    """The daemon on its own event loop in a thread, so hypothesis can drive it synchronously."""

    def __init__(self, directory: Path, max_size: int = 1_000_000) -> None:
        self.settings = load_settings(write_config(directory, max_size=max_size))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = Gateway(self.settings)
        self.call(self.gateway.start())

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        self.call(self.gateway.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = RunningGateway(tmp_path_factory.mktemp("properties"))
    yield running
    running.close()


def mutated(sample: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(sample)
    for position, replacement in cuts:
        at = position % (len(data) + 1)
        data[at : at + len(replacement)] = replacement
    return bytes(data)


header_line = st.builds(
    lambda name, value: f"{name}: {value}\r\n".encode("utf-8", "surrogateescape"),
    st.sampled_from(HEADER_NAMES),
    st.text(max_size=120).map(lambda text: text.replace("\r", " ").replace("\n", " ")),
)
cuts = st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=8)), max_size=6)
assembled = st.builds(
    lambda headers, body: b"".join(headers) + b"\r\n" + body,
    st.lists(header_line, max_size=12),
    st.binary(max_size=500),
)
# As an MTA sends it, with CRLF line ends: smtplib leaves bare LF in bytes alone but still
# dot-stuffs the "lines" it makes, which the server, reading CRLF lines, does not unstuff.
mails = st.one_of(st.binary(max_size=2000), st.builds(mutated, st.sampled_from(SAMPLES), cuts), assembled).map(crlf)


def send_raw(port: int, raw: bytes) -> bool:
    """True when the gateway answered 250 to DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            client.sendmail("fuzz@client.example", [MAILBOX], raw)
        except smtplib.SMTPResponseException as refusal:
            assert 400 <= refusal.smtp_code < 600  # a clear SMTP answer, not a dropped connection
            return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mails)
def test_any_mail_is_stored_or_refused_and_the_daemon_stays_up(running: RunningGateway, raw: bytes) -> None:
    port = running.gateway.port
    accepted = send_raw(port, raw)
    running.call(running.gateway.drain())
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert client.noop()[0] == 250  # still up
    if not accepted:
        return
    with sqlite3.connect(running.settings.database.path) as connection:
        connection.execute("ATTACH DATABASE ? AS intake", (str(spool_path(running.settings.database.path)),))
        row = connection.execute(
            "SELECT id, raw, status, outcome, error FROM spool JOIN intake.spool_raw USING (id)"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        spool_id, stored, status, outcome, error = row
        expected = raw if raw.endswith(b"\r\n") else raw + b"\r\n"  # SMTP ends DATA on a line
        assert stored == expected
        in_ticket = connection.execute("SELECT 1 FROM messages WHERE spool_id = ?", (spool_id,)).fetchone()
    assert status in ("done", "ignored", "failed")
    if status == "failed":
        assert error
    elif status == "ignored":
        assert outcome.startswith("ignored: ")
    else:
        assert in_ticket or outcome.startswith(("duplicate", "sent the list")), outcome


# Raw header bytes as broken clients write them: any byte but the line end, often 8-bit,
# with RFC 2047 words in charsets real mail names (or misnames) mixed in.
CHARSET_LABELS = [b"utf-8", b"utf8", b"gb2312", b"ks_c_5601-1987", b"iso-2022-jp", b"unknown-8bit", b"x-cp1251",
                  b"unicode-escape", b"utf-7", b"bogus"]  # fmt: skip
encoded_word = st.builds(
    lambda charset, kind, data: b"=?" + charset + b"?" + kind + b"?" + data + b"?=",
    st.sampled_from(CHARSET_LABELS),
    st.sampled_from([b"q", b"B"]),
    st.binary(max_size=30).map(lambda data: data.replace(b"?", b"").replace(b"\r", b"").replace(b"\n", b"")),
)
raw_value = st.lists(st.one_of(st.binary(max_size=40), encoded_word), max_size=4).map(
    lambda pieces: b" ".join(pieces).replace(b"\r", b"").replace(b"\n", b"")
)


@settings(max_examples=300, deadline=None)
@given(headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), raw_value), max_size=8), body=st.binary(max_size=200))
def test_raw_8bit_headers_never_yield_surrogates_or_nul(headers: list[tuple[str, bytes]], body: bytes) -> None:
    raw = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body
    mail = parse_mail(raw)
    assert not [text for text in strings(mail) if surrogate_or_nul(text)]


def large_mail(top: str, quote_depth: int, quoted_lines: int, long_line: int, attachment_kb: int, html: bool) -> bytes:
    """A reply as real clients and ERPs write them, large: quoted history many levels deep,
    one line far over SMTP's 1,000 bytes, and a base64 attachment."""
    quoted = "".join(f"{'>' * (1 + line % quote_depth)} línea citada {line}\r\n" for line in range(quoted_lines))
    body = f"{top}\r\n{'x' * long_line}\r\n\r\nEl lun, 30 nov 2026 a las 10:00, Soporte <s@e.example> escribió:\r\n"
    body += quoted
    if html:
        kind, body = "text/html", "<html><body><p>" + body.replace("\r\n", "<br>\r\n") + "</p></body></html>"
    else:
        kind = "text/plain"
    attachment = base64.encodebytes(os.urandom(attachment_kb * 1024)).replace(b"\n", b"\r\n")
    return (
        b"From: Cliente <cliente@empresa.example>\r\nTo: " + MAILBOX.encode() + b"\r\n"
        b"Subject: Re: factura grande\r\nMIME-Version: 1.0\r\n"
        b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@empresa.example>\r\n"  # hypothesis replays examples
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        b"Content-Type: "
        + kind.encode()
        + b"; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body.encode()
        + b"\r\n--b1\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="f.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + attachment
        + b"--b1--\r\n"
    )


@pytest.fixture(scope="module")
def running_large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = RunningGateway(tmp_path_factory.mktemp("large"), max_size=25 * 1024 * 1024)
    yield running
    running.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    top=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=80).map(
        lambda text: "Respuesta " + text.replace(">", "")
    ),
    quote_depth=st.integers(1, 60),
    quoted_lines=st.integers(0, 30_000),
    long_line=st.integers(0, 300_000),
    attachment_kb=st.integers(0, 3_000),
    html=st.booleans(),
)
def test_large_deeply_quoted_mail_with_long_lines_becomes_a_ticket_with_its_new_text(
    running_large: RunningGateway, top: str, quote_depth: int, quoted_lines: int, long_line: int, attachment_kb: int,
    html: bool,
) -> None:  # fmt: skip
    running = running_large
    raw = large_mail(top, quote_depth, quoted_lines, long_line, attachment_kb, html)
    assert send_raw(running.gateway.port, raw)
    running.call(running.gateway.drain())
    with sqlite3.connect(running.settings.database.path) as connection:
        connection.execute("ATTACH DATABASE ? AS intake", (str(spool_path(running.settings.database.path)),))
        spool_id, stored, status, error = connection.execute(
            "SELECT id, raw, status, error FROM spool JOIN intake.spool_raw USING (id) ORDER BY id DESC LIMIT 1"
        ).fetchone()
        new_part = connection.execute("SELECT new_part FROM messages WHERE spool_id = ?", (spool_id,)).fetchone()
    assert stored == raw
    assert status == "done", error
    assert new_part is not None and "Respuesta" in new_part[0]
    assert "línea citada" not in new_part[0]
