"""The parser: decoded headers, text from any charset, attachments; never an exception."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.htmltext import html_to_text
from gateway.parse import decode_text, parse_mail, safe_filename
from tests.conftest import SHARED_MAIL, sample


def test_rfc2047_subject_and_names_are_decoded() -> None:
    mail = parse_mail(sample("01-new-utf8-cc.eml"))
    assert mail.subject == "Error al emitir factura electrónica: rechazo del SII"
    assert mail.sender is not None and mail.sender.name == "María José Pérez"
    assert [(p.name, p.address) for p in mail.cc] == [("Jorge Núñez", "jnunez@distribuidora-andes.example")]
    assert mail.date == datetime(2026, 11, 20, 12, 15, tzinfo=UTC)  # 09:15 -0300


def test_threading_headers_are_lists_of_bare_ids() -> None:
    mail = parse_mail(sample("03-reply-gmail-es-token.eml"))
    assert mail.message_id == "CAF01.003@mail.distribuidora-andes.example"
    assert mail.in_reply_to == ("ticket-TK-000001-ack@estela.example",)
    assert mail.references == ("CAF01.001@mail.distribuidora-andes.example", "ticket-TK-000001-ack@estela.example")


def test_rfc2231_attachment_name_in_windows_1252() -> None:
    mail = parse_mail(sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    [attachment] = mail.attachments
    assert attachment.filename == "captura inventario Peñalolén.png"
    assert len(attachment.content) == 1032


def test_html_only_mail_gets_text_converted_from_html() -> None:
    mail = parse_mail(sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    assert mail.html is not None and "<p" in mail.html
    assert mail.text.startswith("Buenos días,\n")
    assert "Andrés Muñoz" in mail.text


def test_base64_utf8_body() -> None:
    mail = parse_mail(sample("09-new-english-base64-importance-high.eml"))
    assert "Sessão expirada" in mail.text


def test_unknown_charset_falls_back_to_windows_1252() -> None:
    mail = parse_mail(sample("14-broken-mime.eml"))
    assert mail.text.startswith("El módulo de nómina no abre.")
    assert mail.date is None  # "not a date": no date rather than a wrong one


@pytest.mark.parametrize(
    ("payload", "declared", "expected"),
    [
        ("año".encode(), "utf-8", "año"),
        ("año".encode("cp1252"), "utf-8", "año"),  # mislabelled
        ("año".encode("cp1252"), "x-unknown", "año"),
        ("año".encode(), "us-ascii", "año"),
        (b"\x81\x8d\x8f", None, "\x81\x8d\x8f"),  # undefined in cp1252: latin-1 takes any byte
        (b"a\r\nb\rc", "utf-8", "a\nb\nc"),
    ],
)
def test_decode_text_never_raises(payload: bytes, declared: str | None, expected: str) -> None:
    assert decode_text(payload, declared) == expected


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\system32\\evil.dll", "evil.dll"),
        ("/absolute/path.txt", "path.txt"),
        ("nul\x00byte.txt", "nul_byte.txt"),
        ("..", "adjunto"),
        ("", "adjunto"),
        ("factura ñandú.pdf", "factura ñandú.pdf"),
    ],
)
def test_attachment_names_cannot_be_paths(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_html_to_text_drops_scripts_and_keeps_paragraphs() -> None:
    html = "<html><head><style>p{}</style></head><body><p>Hola</p><script>alert(1)</script><p>Chau<br>fin</p>"
    assert html_to_text(html) == "Hola\n\nChau\nfin"


def test_header_injection_characters_are_flattened() -> None:
    raw = b"From: a@b.example\r\nSubject: =?utf-8?q?hola=0D=0ABcc=3A_victim=40x.example?=\r\n\r\nx\r\n"
    mail = parse_mail(raw)
    assert "\r" not in mail.subject and "\n" not in mail.subject


def _corpus() -> list[Path]:
    import test  # CPython's own test package ships odd real-world mail

    data = Path(test.__file__).parent / "test_email" / "data"
    return sorted(data.glob("msg_*.txt")) + sorted(SHARED_MAIL.glob("*.eml"))


@pytest.mark.parametrize("path", _corpus(), ids=lambda path: path.name)
def test_parser_never_raises_on_real_world_mail(path: Path) -> None:
    mail = parse_mail(path.read_bytes())
    assert isinstance(mail.text, str) and isinstance(mail.subject, str)
