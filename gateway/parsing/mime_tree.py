"""The MIME tree as the standard library's feed parser reads it, made safe to walk.

Its guarantee: any bytes give a tree whose nesting the rest of the parser can follow
without a RecursionError, and reading a part's body or charset never raises. compat32
recurses once a level (the feed parser, `walk()`, the generator), so a mail nested a few
hundred levels deep (seen fuzzed; no mail program writes one) is read headers-only and
reported as deep as it is, for the pipeline to refuse by limits.max_depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesHeaderParser

from gateway.parsing.headers import RAW_HEADERS

# Real mail nests under 10 levels (a forward of a forwarded signed mail); the feed parser
# fails near Python's recursion limit (1000 frames), and regenerating an attached message
# takes about six frames a level.
MAX_PARSED_DEPTH = 100
FEED_BYTES = 64 * 1024
# A nested level needs its own Content-Type header: their count bounds the depth.
_NESTING_TYPE = re.compile(rb"(?im)^content-type:[ \t]*(?:multipart|message)/")


@dataclass(frozen=True)
class Tree:
    message: Message
    depth: int  # how deep multiparts nest (an upper bound when too deep to parse)

    @property
    def too_deep(self) -> bool:
        return self.depth > MAX_PARSED_DEPTH


def read_tree(raw: bytes) -> Tree:
    try:
        message = _feed(raw)
    except RecursionError:
        return Tree(_headers_only(raw), max(len(_NESTING_TYPE.findall(raw)), MAX_PARSED_DEPTH + 1))
    except (UnicodeError, LookupError, ValueError, TypeError):
        # The library's own reading of a parameter raised mid-parse (an RFC 2231
        # `boundary*=` whose charset holds 8-bit bytes: UnicodeEncodeError in
        # email.utils.collapse_rfc2231_value): the body is the sender's text, as for a
        # multipart whose boundary never appears.
        return Tree(_as_text(raw), 0)
    depth = depth_of(message)
    return Tree(_headers_only(raw) if depth > MAX_PARSED_DEPTH else message, depth)


def _feed(raw: bytes) -> Message:
    # What email.message_from_bytes (and so mail-parser) does, fed in pieces: it decodes the
    # whole mail into one str and reads it through a StringIO, at four bytes a character;
    # in pieces, the parser never holds the whole mail as text.
    parser = BytesFeedParser(policy=RAW_HEADERS)
    for start in range(0, len(raw), FEED_BYTES):
        parser.feed(raw[start : start + FEED_BYTES])
    return parser.close()


def _headers_only(raw: bytes) -> Message:
    message = BytesHeaderParser(policy=RAW_HEADERS).parsebytes(raw)
    message.set_payload("")  # the body is not read: the mail is refused by limits.max_depth
    return message


def _as_text(raw: bytes) -> Message:
    message = BytesHeaderParser(policy=RAW_HEADERS).parsebytes(raw)  # the body as it is, unsplit
    del message["Content-Type"]
    message["Content-Type"] = "text/plain"
    return message


def depth_of(message: Message) -> int:
    """How deep multiparts (and parsed attached messages) nest; without recursion."""
    deepest = 0
    stack = [(message, 0)]
    while stack:
        part, above = stack.pop()
        if part.is_multipart():
            deepest = max(deepest, above + 1)
            stack += [(child, above + 1) for child in part.get_payload() if isinstance(child, Message)]
    return deepest


def stored_payload(part: Message) -> object:
    """`part.get_payload()` without its decoding: for a body with 8-bit bytes compat32
    decodes by the declared charset even when not asked to, and raises for a charset
    Python knows but cannot decode with (punycode, idna, undefined), a charset name with
    a NUL, or an RFC 2231 `charset*=` (a tuple). None then: the caller decodes the bytes."""
    try:
        return part.get_payload()
    except (UnicodeError, ValueError, TypeError):  # compat32 itself catches LookupError
        return None


def charset_of(part: Message) -> str | None:
    """The declared charset; None when it cannot be read (headers.codecs_for tries what
    a label may mean, and undeclared bytes are read as UTF-8, else Windows-1252)."""
    try:
        return part.get_content_charset()
    except (UnicodeError, ValueError, TypeError, LookupError):  # RFC 2231 charset*= in an odd charset
        value = part.get_param("charset")
        return value[2] if isinstance(value, tuple) else None
