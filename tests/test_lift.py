"""Large bodies set aside before parsing: the parse must be the one the full parser gives."""

from __future__ import annotations

import base64
import os
import random
import re
from email.message import EmailMessage

import pytest

import gateway.parsing.set_aside as lift
from gateway.parsing.mail import ParseError, parse_mail

KB = 1024


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same code paths as 25 MB mail, with mail small enough for a quick test.
    monkeypatch.setattr(lift, "LIFT_FROM_BYTES", 20 * KB)
    monkeypatch.setattr(lift, "LIFT_PART_BYTES", 4 * KB)


def full_parse(raw: bytes, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as patched:
        patched.setattr(lift, "LIFT_FROM_BYTES", 1 << 62)
        return parse_mail(raw)


def crlf(message: EmailMessage) -> bytes:
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def with_attachments(*contents: bytes, subject: str = "Respaldo") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ana@empresa.example", "soporte@estela.example", subject
    message["Message-ID"] = "<lift@empresa.example>"
    message.set_content("Adjunto los archivos.\n")
    message.add_alternative("<p>Adjunto los <b>archivos</b>.</p>", subtype="html")
    for index, content in enumerate(contents):
        message.add_attachment(content, maintype="application", subtype="pdf", filename=f"doc{index}.pdf")
    return message


def forwarded(inner: EmailMessage) -> EmailMessage:
    outer = with_attachments(os.urandom(30 * KB), subject="Fwd")
    outer.add_attachment(inner)  # message/rfc822: its parts are written out again, never set aside
    return outer


def cases() -> dict[str, bytes]:
    big, other = os.urandom(40 * KB), os.urandom(25 * KB)
    nested = crlf(with_attachments(big, other))
    single = EmailMessage()
    single["From"], single["Subject"] = "escaner@empresa.example", "Escaneo"
    single.set_content(big, maintype="application", subtype="pdf", filename="escaneo.pdf")
    text_part = EmailMessage()
    text_part["From"], text_part["Subject"] = "ana@empresa.example", "Texto largo"
    text_part.set_content("línea de texto\n" * 3000, cte="base64")
    bad_padding = nested.replace(base64.b64encode(big[:3])[:4], b"====", 1)
    return {
        "crlf, text and html and two attachments": nested,
        "lf line ends": nested.replace(b"\r\n", b"\n"),
        "preamble, epilogue and transport padding": nested.replace(b"\r\n\r\n--", b"\r\n\r\npreamble\r\n--", 1)
        + b"epilogue\r\n",
        "attached message with a large part": crlf(forwarded(with_attachments(big))),
        "single-part base64 mail": crlf(single),
        "large base64 text body": crlf(text_part),
        "no closing delimiter": nested[: nested.rindex(b"--")] + b"\r\n",
        "bad padding in a large body": bad_padding,
    }


@pytest.mark.parametrize("name", list(cases()))
def test_setting_large_bodies_aside_parses_as_the_full_parser_does(name: str, monkeypatch) -> None:
    raw = cases()[name]
    assert parse_mail(raw) == full_parse(raw, monkeypatch)


def test_large_bodies_are_set_aside_and_the_rest_kept_as_it_was() -> None:
    big, other = os.urandom(40 * KB), os.urandom(25 * KB)
    raw = crlf(with_attachments(big, other))
    lifted = lift.lift_large_bodies(raw)
    assert len(lifted.bodies) == 2 and len(lifted.skeleton) < 5 * KB
    restored = lifted.skeleton
    for placeholder, body in lifted.bodies.items():
        restored = restored.replace(placeholder.encode(), bytes(body))
    assert restored == raw
    assert [base64.b64decode(bytes(body)) for body in lifted.bodies.values()] == [big, other]


def test_a_mail_the_walk_does_not_follow_is_left_whole() -> None:
    raw = crlf(with_attachments(os.urandom(40 * KB)))
    truncated = raw[: raw.rindex(b"--")]  # no closing delimiter
    assert lift.lift_large_bodies(truncated).bodies == {}
    broken_header = raw.replace(b"Content-Type: application/pdf", b"Content-Type application/pdf", 1)
    assert lift.lift_large_bodies(broken_header).bodies == {}
    non_ascii_boundary = re.sub(rb'boundary="([^"]+)"', rb"boundary*=utf-8''%C3%A9\1", raw, count=1)
    assert lift.lift_large_bodies(non_ascii_boundary).bodies == {}


def test_damaged_mail_parses_the_same_with_or_without_setting_aside(monkeypatch) -> None:
    rng = random.Random(20261123)  # fixed: the same damaged mails every run
    originals = list(cases().values())
    for _ in range(150):
        raw = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(raw))
            if rng.random() < 0.4:
                del raw[at : at + rng.randint(1, 200)]
            else:
                raw[at:at] = rng.choice([b"\r\n", b"\n", b"--", b"\r\n\r\n", b"--x\r\n", bytes([rng.randrange(256)])])
        damaged = bytes(raw)
        assert outcome(parse_mail, damaged) == outcome(lambda mail: full_parse(mail, monkeypatch), damaged)


def outcome(parse, raw: bytes) -> object:  # type: ignore[no-untyped-def]
    try:
        return parse(raw)
    except ParseError as error:
        return str(error)
