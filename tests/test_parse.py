"""The parser: decoded headers, text from any charset, attachments; never an exception."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.parsing.html_text import html_to_text
from gateway.parsing.mail import decode_text, parse_mail, safe_filename
from tests.conftest import sample
from tests.support.parsing import corpus, read_field, strings, surrogate_or_nul


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
        # Labels as real mail writes them, read with the superset the client really used.
        ("镕基".encode("gbk"), "gb2312", "镕基"),  # GBK-only characters under gb2312
        ("똠방각하".encode("cp949"), "ks_c_5601-1987", "똠방각하"),  # Outlook's Korean is cp949
        ("ｱｲｳ 日本".encode("iso2022_jp_ext"), "ISO-2022-JP", "ｱｲｳ 日本"),  # half-width kana
        ("日本".encode("iso2022_jp"), "csISO2022JP", "日本"),
        ("Привет".encode("cp1251"), "x-cp1251", "Привет"),
        ("Привет".encode("cp1251"), "win-1251", "Привет"),
        ("Příliš".encode("cp1250"), "Windows-1250", "Příliš"),
        ("año".encode("cp1252"), "unknown-8bit", "año"),
        ("año €".encode("cp1252"), "iso-8859-1", "año €"),  # Outlook labels cp1252 as latin-1
        ("año".encode(), 'utf-8"', "año"),
        ("año".encode(), "UTF_8", "año"),
        (b"hola\x00 mundo", "utf-8", "hola mundo"),  # a NUL cuts text in C and in some databases
        (b"\\udcff\\x00", "unicode-escape", "\\udcff\\x00"),  # an escape codec is no charset
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


@pytest.mark.parametrize("path", corpus(), ids=lambda path: path.name)
def test_parser_never_raises_on_real_world_mail(path: Path) -> None:
    mail = parse_mail(path.read_bytes())
    assert isinstance(mail.text, str) and isinstance(mail.subject, str)
    assert not [text for text in strings(mail) if surrogate_or_nul(text)]


def _mail(*header_lines: bytes, body: bytes = b"Hola\r\n") -> bytes:
    return b"\r\n".join((b"To: soporte@estela.example", *header_lines, b"", b"")) + body


DSN_8BIT = (
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.cliente.example\r\n\r\n"
    b"Final-Recipient: rfc822; jose@cliente.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 Usu\xe1rio desconhecido\r\n\r\n--b--"
)
ATTACHMENT_8BIT = (
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nVer adjunto\r\n"
    b'--b\r\nContent-Type: application/pdf; name="factura a\xf1o.pdf"\r\n'
    b'Content-Disposition: attachment; filename="factura a\xf1o.pdf"\r\n\r\n%PDF\r\n--b--'
)


# (header bytes as sent, what to read from the parsed mail, the text a person would expect)
HEADER_CASES = [
    # Raw 8-bit headers without RFC 2047 (RFC 6532 allows UTF-8; old clients write Latin-1).
    ([b"From: a@b.example", b"Subject: Facturaci\xf3n a\xf1o"], "subject", "Facturación año"),
    ([b"From: a@b.example", "Subject: Facturación año".encode()], "subject", "Facturación año"),
    ([b"From: Jos\xe9 P\xe9rez <jose@x.example>"], "sender", ("José Pérez", "jose@x.example")),
    (["From: José <josé@cliente.example>".encode()], "sender", ("José", "josé@cliente.example")),
    (["From: José <josé@cliente.example>".encode()], "from", "José <josé@cliente.example>"),
    ([b"From: a@b.example", b"Subject: hola\x00 mundo"], "subject", "hola mundo"),
    ([b"From: a@b.example", b"Subject: \xff\xfe"], "subject", "ÿþ"),  # not lost to ""
    ([b"From: a@b.example", b"Message-ID: <caf\xe9.1@x.example>"], "message_id", "café.1@x.example"),
    ([b"From: a@b.example", b"In-Reply-To: <caf\xe9.1@x.example>"], "in_reply_to", ("café.1@x.example",)),
    ([b"From: a@b.example", b"Cc: Jos\xe9 <j@x.example>"], "cc", (("José", "j@x.example"),)),
    # Encoded words (RFC 2047) in charsets by their real-world names.
    ([b"From: a@b.example", b"Subject: =?gb2312?b?6Ua7+Q==?="], "subject", "镕基"),
    ([b"From: a@b.example", b"Subject: =?ks_c_5601-1987?b?jGO55rCix88=?="], "subject", "똠방각하"),
    ([b"From: a@b.example", b"Subject: =?ISO-2022-JP?B?GyhJMTIzGyhCIBskQkZ8S1wbKEI=?="], "subject", "ｱｲｳ 日本"),
    ([b"From: a@b.example", b"Subject: =?unknown-8bit?q?a=F1o?="], "subject", "año"),
    ([b"From: a@b.example", b'Subject: =?utf-8"?q?a=C3=B1o?='], "subject", "año"),
    ([b"From: a@b.example", b"Subject: =?x-cp1251?b?z/Do4uXy?="], "subject", "Привет"),
    ([b"From: a@b.example", b"Subject: =?x-weird?q?a=F1o?="], "subject", "año"),  # unknown: fallbacks
    ([b"From: a@b.example", b"Subject: =?utf-8?b?w6E=?= =?utf-8?b?w7E=?=x"], "subject", "áñx"),
    ([b"From: a@b.example", b"Subject: =?utf-8?b?4oI=?= =?utf-8?b?rA==?="], "subject", "€"),  # split char
    # A From that is malformed but holds the customer's address.
    (["From: José Pérez jose@x.example".encode()], "sender", ("José Pérez", "jose@x.example")),
    ([b"From: jose@x.example."], "sender", ("", "jose@x.example")),
    ([b"From: jose@x.example (Jos\xe9)"], "sender", ("José", "jose@x.example")),
    ([b"From: Jos\xe9 <a@x.example>, b@y.example"], "sender", ("José", "a@x.example")),
    # Headers that compat32 hands out as email.header.Header objects (AttributeError before).
    ([b"From: a@b.example", ATTACHMENT_8BIT], "filenames", ("factura año.pdf",)),
    ([b"From: postmaster@cliente.example", DSN_8BIT], "diagnostics", ("550 Usuário desconhecido",)),
]


@pytest.mark.parametrize(("lines", "what", "expected"), HEADER_CASES)
def test_any_header_bytes_give_the_text_a_person_wrote(lines: list[bytes], what: str, expected: object) -> None:
    mail = parse_mail(_mail(*lines))
    assert read_field(mail, what) == expected
    assert not [text for text in strings(mail) if surrogate_or_nul(text)]
