"""DATA's content (RFC 5321 §4.5.2), whole or in pieces: CRLF line endings throughout, a
dot doubled at the start of every line, CRLF.CRLF at the end.

A mail in the outbox over `STREAMED_BYTES` (an agent's copy carrying the customer's files,
up to `max_agent_attachment_bytes`) is never held whole by the relay: it is read from the
outbox in pieces (outbox.py, `StoredMail`) and each piece goes on the wire as it is read.
`Lines` and `Stuffing` give, piece by piece, exactly the bytes `normalized` and `stuffed`
give for the whole mail, whatever the piece boundaries: a CR at the end of a piece waits
for the next one (it may be a CRLF cut in two), and whether the next piece starts a line is
carried over.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
CRLF = b"\r\n"
# Over this the relay reads a mail in pieces: past any notification without files (~22 KB),
# and small enough that a batch of due mail (relay.BATCH) read whole stays a few MB.
STREAMED_BYTES = 256 * 1024


class StoredBody(Protocol):
    """A mail read in pieces, as often as asked (a pass to learn its size, then the wire)."""

    @property
    def size(self) -> int: ...

    def pieces(self) -> AsyncIterator[bytes]: ...


def _crlf(data: bytes) -> bytes:
    if data.count(b"\r") == data.count(b"\n") == data.count(CRLF):  # the outbox's own mail (mime.py)
        return data
    return LINE_ENDINGS.sub(CRLF, data)  # a bare CR or LF


def normalized(raw: bytes) -> bytes:
    """The mail with CRLF line endings throughout, ending with one (RFC 5321 §2.3.8)."""
    raw = _crlf(raw)
    return raw if raw.endswith(CRLF) else raw + CRLF


def stuffed(body: bytes) -> bytes:
    """DATA's content: every line that begins with a dot gets one more, then CRLF.CRLF
    (RFC 5321 §4.5.2)."""
    return (b"." if body.startswith(b".") else b"") + body.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Lines:
    """`normalized`, a piece at a time: `feed` each piece, then `end`."""

    def __init__(self) -> None:
        self._held = b""  # a CR that ended the last piece
        self._ends_line = False  # what was given out so far ends with CRLF

    def feed(self, piece: bytes) -> bytes:
        data = self._held + piece if self._held else piece
        self._held = b"\r" if data.endswith(b"\r") else b""
        out = _crlf(data[:-1] if self._held else data)
        if out:
            self._ends_line = out.endswith(b"\n")
        return out

    def end(self) -> bytes:
        """What is left: the held CR as a line ending, or the CRLF a mail must end with."""
        if self._held:
            self._held = b""
            return CRLF
        return b"" if self._ends_line else CRLF


class Stuffing:
    """`stuffed(normalized(raw))`, a piece at a time: `feed` each piece, then `end`."""

    def __init__(self) -> None:
        self._lines = Lines()
        self._at_line_start = True

    def feed(self, piece: bytes) -> bytes:
        return self._stuff(self._lines.feed(piece))

    def end(self) -> bytes:
        return self._stuff(self._lines.end()) + b".\r\n"

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        dot = b"." if self._at_line_start and data.startswith(b".") else b""
        self._at_line_start = data.endswith(b"\n")
        return dot + data.replace(b"\r\n.", b"\r\n..")


async def scan(body: StoredBody) -> tuple[bool, int]:
    """Whether the stored mail is all ASCII, and its size once normalized (SIZE, RFC 1870)."""
    ascii_only, size, lines = True, 0, Lines()
    async for piece in body.pieces():
        ascii_only = ascii_only and piece.isascii()
        size += len(lines.feed(piece))
    return ascii_only, size + len(lines.end())
