"""Outgoing mail as bytes on the wire: headers, RFC 2047 words, multipart bodies.

Pure code. Written out directly rather than through `email.generator`, whose header
folding re-parses every value: most of a notification's cost (docs/performance.md). Every
value is made one line first (CR, LF and other control characters become spaces), so no
customer-supplied text can add a header. Each address is encoded on its own and then
joined, so a comma in an accented display name can never merge two recipients (Python
3.11's `email` policies can fold a To/Cc list so that a comma lands inside an encoded
word). Boundaries start with "=_", which neither quoted-printable nor base64 can produce.

Every header is ASCII but an internationalised address (`josé@cliente.example`), which has
no ASCII form: it is written as it is, in UTF-8 (RFC 6532 §3.2), and the relay then sends
the mail with SMTPUTF8 (RFC 6531). A lone surrogate (undecodable bytes that slipped
through) becomes U+FFFD, so composing never fails on the text it is given.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from urllib.parse import quote

CRLF = "\r\n"
MAX_LINE = 76  # RFC 5322 §2.1.1 recommends 78; encoded words want 75 (RFC 2047 §2)
WORD_BYTES = 42  # UTF-8 bytes per encoded word: 56 base64 characters, 68 with the wrapping
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
SURROGATES = re.compile("[\ud800-\udfff]")
LINE_BYTES = 57  # encoded, one 76-character base64 line (what base64.encodebytes writes)


def one_line(value: str) -> str:
    """A header-safe value: control characters (CR and LF above all) become spaces, lone
    surrogates U+FFFD."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", SURROGATES.sub("\ufffd", value)).split())


def encoded_words(text: str) -> str:
    """`text` as RFC 2047 base64 words, space-separated, never splitting a character."""
    words, chunk = [], b""
    for character in text:
        encoded = character.encode("utf-8")
        if len(chunk) + len(encoded) > WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(word).decode()}?=" for word in words)


def unstructured(value: str) -> str:
    """A Subject-like value: as it is when ASCII, else encoded words."""
    value = one_line(value)
    return encoded_words(value) if _needs_words(value) else value


def _needs_words(text: str) -> bool:
    # Text that holds "=?" could be read as an encoded word by the reader's mail program,
    # and a sender's `=?utf-8?q?=0D=0A?=`, shown as text, would then become CR LF in it:
    # RFC 2047 §5 wants such text encoded itself.
    return not text.isascii() or "=?" in text


def mailbox(name: str, address: str) -> str:
    name, address = one_line(name), one_line(address)
    if not name:
        return address
    if _needs_words(name):
        return f"{encoded_words(name)} <{address}>"
    if SPECIALS.search(name):  # "Soto, Carla": the comma must stay inside quotes
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{name} <{address}>"


def address_list(people: Iterable[tuple[str, str]]) -> str:
    return ", ".join(mailbox(name, address) for name, address in people)


def header_lines(headers: Iterable[tuple[str, str]]) -> str:
    """Headers folded at spaces (RFC 5322 §2.2.3); empty values are left out."""
    return "".join(_fold(f"{name}: {value}") + CRLF for name, value in headers if value)


def _fold(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    name, *words = line.split(" ")
    # The first word stays with "Name:": a first line of only the name reads back as a
    # value that starts with a space.
    pieces, current = [], f"{name} {words.pop(0)}" if words else name
    for word in words:
        if len(current) + 1 + len(word) > MAX_LINE:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}"
    pieces.append(current)
    return (CRLF + " ").join(pieces)


def quoted_printable(text: str) -> str:
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8", "replace"), istext=True).decode("ascii")
    return encoded.replace("\n", CRLF)


class Base64Lines:
    """A file's base64 body (RFC 2045 §6.8: 76-character lines, CRLF), made from its content
    in pieces of any size as they are read, so the content itself is never held whole."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._rest = b""

    def write(self, piece: bytes) -> None:
        data = self._rest + piece
        whole = len(data) - len(data) % LINE_BYTES
        self._rest = data[whole:]
        if whole:
            self._lines.append(_base64(data[:whole]))

    def done(self) -> tuple[bytes, ...]:
        if self._rest:
            self._lines.append(_base64(self._rest))
            self._rest = b""
        return tuple(self._lines)


Content = bytes | tuple[bytes, ...]  # the raw content, or its base64 lines (Base64Lines.done)


def compose(
    headers: list[tuple[str, str]], text: str, html: str, attachments: Iterable[tuple[str, str, Content]] = ()
) -> bytes:
    """A complete mail: multipart/alternative text + HTML, in multipart/mixed with any
    attachments (file name, content type, content). Joined once at the end, so a large
    attachment is copied once more, not at every level of nesting."""
    alternative = _boundary()
    body = _multipart(
        alternative,
        [
            [_part("text/plain; charset=utf-8", "quoted-printable", quoted_printable(text)).encode("ascii")],
            [_part("text/html; charset=utf-8", "quoted-printable", quoted_printable(html)).encode("ascii")],
        ],
    )
    content_type = f'multipart/alternative; boundary="{alternative}"'
    files = list(attachments)
    if files:
        mixed = _boundary()
        inner = [f"Content-Type: {content_type}{CRLF}{CRLF}".encode("ascii"), *body]
        body = _multipart(mixed, [inner, *(_attachment(*item) for item in files)])
        content_type = f'multipart/mixed; boundary="{mixed}"'
    top = header_lines([*headers, ("MIME-Version", "1.0"), ("Content-Type", content_type)])
    # UTF-8 only where an address has no ASCII form (RFC 6532); the body is ASCII always.
    return b"".join([top.encode("utf-8"), CRLF.encode("ascii"), *body])


def _boundary() -> str:
    return f"=_{secrets.token_hex(12)}"


def _part(content_type: str, encoding: str, payload: str) -> str:
    return f"Content-Type: {content_type}{CRLF}Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}{payload}"


def _multipart(boundary: str, parts: list[list[bytes]]) -> list[bytes]:
    pieces: list[bytes] = []
    for part in parts:
        pieces.append(f"--{boundary}{CRLF}".encode("ascii"))
        pieces.extend(part)
        last = next((piece for piece in reversed(part) if piece), b"")
        if not last.endswith(b"\r\n"):
            pieces.append(b"\r\n")
    pieces.append(f"--{boundary}--{CRLF}".encode("ascii"))
    return pieces


def _attachment(filename: str, content_type: str, content: Content) -> list[bytes]:
    name = one_line(filename)
    # An ASCII name as it is; any other in RFC 2231 form, which current clients read.
    parameter = f'="{name}"' if name.isascii() and '"' not in name else f"*=utf-8''{quote(name, safe='')}"
    headers = [
        ("Content-Type", f"{one_line(content_type)}; name{parameter}"),
        ("Content-Disposition", f"attachment; filename{parameter}"),
        ("Content-Transfer-Encoding", "base64"),
    ]
    lines = (_base64(content),) if isinstance(content, bytes) else content
    return [(header_lines(headers) + CRLF).encode("utf-8"), *lines]


def _base64(content: bytes) -> bytes:
    return base64.encodebytes(content).replace(b"\n", b"\r\n")
