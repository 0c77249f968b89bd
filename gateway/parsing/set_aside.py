"""Large base64 bodies set aside before a large mail is parsed.

The `email` parser keeps a part's body as a list of lines and then as one string, so an
attachment costs a parser worker several times its size (docs/performance.md). So in a large mail, the bodies of
big base64 leaf parts that are neither text nor a message (files: images, PDFs,
archives) are cut out of the raw bytes and a placeholder line stands in for each; the
`email` tree of what is left is the same as the full parse gives, and the attachment is
decoded straight from the raw bytes. A mail this walk does not follow exactly (a header
block with defects, a multipart without its closing delimiter) is left whole, for the
full parse. Parts inside an attached message are never set aside: they are written out
again as the attachment's bytes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

LIFT_FROM_BYTES = 4 * 1024 * 1024  # smaller mail is parsed as it is
LIFT_PART_BYTES = 256 * 1024  # a base64 body larger than this is set aside
AFTER_DELIMITER = re.compile(rb"(--)?[ \t]*(\r\n|\n|$)")  # what may follow "--boundary" on its line


@dataclass(frozen=True)
class Lifted:
    skeleton: bytes  # the raw mail, with a placeholder line where each body was
    bodies: dict[str, memoryview]  # placeholder → the base64 body it stands for


class _IrregularMimeError(Exception):
    """Something the full parser would read in its own way: lift nothing."""


def lift_large_bodies(raw: bytes) -> Lifted:
    if len(raw) < LIFT_FROM_BYTES:
        return Lifted(raw, {})
    try:
        spans = _large_bodies(raw, 0, len(raw))
    except _IrregularMimeError:
        return Lifted(raw, {})
    view = memoryview(raw)
    nonce = secrets.token_hex(8)  # a placeholder no sender can have written
    pieces: list[bytes | memoryview] = []
    bodies: dict[str, memoryview] = {}
    copied_to = 0
    for start, end in spans:
        placeholder = f"ticket-gateway-set-aside-{nonce}-{len(bodies)}"
        pieces += [view[copied_to:start], placeholder.encode()]
        bodies[placeholder] = view[start:end]
        copied_to = end
    pieces.append(view[copied_to:])
    return Lifted(b"".join(pieces), bodies)


def _large_bodies(raw: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the large base64 leaf bodies in the entity raw[start:end]."""
    body_start = _body_start(raw, start, end)
    headers = HeaderParser().parsestr(raw[start:body_start].decode("ascii", "surrogateescape"))
    if headers.defects or headers.get_payload():
        raise _IrregularMimeError
    if headers.get_content_maintype() == "multipart":
        return _large_bodies_of_multipart(raw, body_start, end, headers)
    encoding = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
    # Text is read by mail-parser too, and a message/* body is parsed as a message.
    readable = headers.get_content_maintype() in ("text", "message")
    if encoding == "base64" and not readable and end - body_start > LIFT_PART_BYTES:
        return [(body_start, end)]
    return []


def _large_bodies_of_multipart(raw: bytes, start: int, end: int, headers: Message) -> list[tuple[int, int]]:
    boundary = headers.get_boundary()
    if not boundary:
        raise _IrregularMimeError
    try:
        marker = b"--" + boundary.encode("ascii", "surrogateescape")  # as the header's raw bytes
    except UnicodeEncodeError:  # decoded from RFC 2231 into more than ASCII
        raise _IrregularMimeError from None
    spans: list[tuple[int, int]] = []
    part_start = None
    for line_start, line_end, closing in _delimiters(raw, start, end, marker):
        if part_start is not None:
            # The line break before a delimiter belongs to it, not to the part (RFC 2046 5.1.1).
            part_end = line_start - (2 if raw[line_start - 2 : line_start] == b"\r\n" else 1)
            spans += _large_bodies(raw, part_start, max(part_start, part_end))
        if closing:
            return spans
        part_start = line_end
    raise _IrregularMimeError  # no closing delimiter


def _delimiters(raw: bytes, start: int, end: int, marker: bytes) -> Iterator[tuple[int, int, bool]]:
    """(line start, line end, closing) of each delimiter line in raw[start:end]."""
    position = start
    while (found := raw.find(marker, position, end)) >= 0:
        position = found + len(marker)
        at_line_start = found == start or raw[found - 1] == ord("\n")
        rest = AFTER_DELIMITER.match(raw, position, end)
        if at_line_start and rest is not None:
            yield found, rest.end(), rest.group(1) is not None


def _body_start(raw: bytes, start: int, end: int) -> int:
    """Where the body begins: after the first empty line (the end, without one)."""
    if raw.startswith((b"\r\n", b"\n"), start, end):  # no header at all
        return start + (2 if raw.startswith(b"\r\n", start) else 1)
    ends = [index + len(blank) for blank in (b"\r\n\r\n", b"\n\n") if (index := raw.find(blank, start, end)) >= 0]
    return min(ends) if ends else end
