"""Text from the bytes a sender wrote: charsets by the names real mail uses, raw 8-bit
headers, RFC 2047 encoded words, addresses and Message-IDs.

Its guarantee: every function returns text, whatever the bytes, and nothing it returns
holds a surrogate escape or a NUL (nor, in a header value, any control character). Every
header is written by an attacker or a broken client, so nothing here raises on content.
"""

from __future__ import annotations

import binascii
import codecs
import email.utils
import itertools
import re
from collections.abc import Iterable
from email.policy import Compat32

# Labels as real mail writes them (compared without case or punctuation, so "UTF_8",
# "utf8" and 'utf-8"' are one key) and the codec to read them with: the superset a
# Windows or Mac client really wrote under that name, as WHATWG's Encoding Standard does
# (gb2312 mail written in GBK, ks_c_5601-1987 in Outlook's cp949, latin-1 in cp1252).
_ALIASES = {
    "utf8": "utf-8", "utf": "utf-8", "unicode11utf8": "utf-8", "unicode20utf8": "utf-8", "xunicode20utf8": "utf-8",
    "gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "xgbk": "gb18030", "euccn": "gb18030",
    "chinese": "gb18030", "csgb2312": "gb18030", "gb231280": "gb18030", "windows936": "gb18030",
    "ksc56011987": "cp949", "ksc5601": "cp949", "ksc56011989": "cp949", "euckr": "cp949", "korean": "cp949",
    "csksc56011987": "cp949", "windows949": "cp949", "uhc": "cp949",
    "shiftjis": "cp932", "sjis": "cp932", "xsjis": "cp932", "mskanji": "cp932", "csshiftjis": "cp932",
    "windows31j": "cp932", "big5": "big5hkscs", "xbig5": "big5hkscs", "csbig5": "big5hkscs", "cnbig5": "big5hkscs",
    "iso88591": "cp1252", "latin1": "cp1252", "l1": "cp1252", "cp819": "cp1252", "iso885911987": "cp1252",
    "iso88599": "cp1254", "latin5": "cp1254", "iso885911": "cp874", "tis620": "cp874", "iso88598i": "iso8859-8",
    "iso88596i": "iso8859-6",
}  # fmt: skip
# Every ISO-2022-JP variant: the escape sequences name the character set, so a codec that
# knows more of them reads the same text; Japanese clients label the extended ones plainly.
_ISO_2022_JP = ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004", "iso2022_jp_3")
_SUPERSETS = {"cp932": ("cp932", "shift_jis_2004"), "eucjp": ("euc_jp", "euc_jis_2004")}
# "Not declared": the bytes are read as undeclared 8-bit (UTF-8 when valid, else cp1252).
_UNDECLARED = frozenset({"", "unknown8bit", "unknown", "xunknown", "8bit", "binary", "default", "none",
                         "usascii", "ascii", "ansix341968", "us"})  # fmt: skip
_WINDOWS = re.compile(r"x?(?:windows|win|cp|ms)(125[0-8])")
# Codecs that turn text escapes into any code point (a surrogate, a NUL): never a charset.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
# cp1252 leaves five bytes undefined; WHATWG reads them as the C1 controls latin-1 has.
_CP1252_HIGH = {byte: bytes([byte]).decode("cp1252", "ignore") or chr(byte) for byte in range(0x80, 0xA0)}

# RFC 2047 section 2, read as leniently as mail programs do (Thunderbird, Apple Mail), so
# that no word a reader would decode reaches them undecoded: encoded text with spaces in
# it (broken encoders, folding inside a word), and a last word without its closing "?=".
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?(?:([^?]*)\?=|([^?\s]*)$)")
MESSAGE_ID = re.compile(r"<([^<>\s\x00-\x1f\x7f-\x9f]+)>")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # in a header value, one line
_UNSAFE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
# An addr-spec as senders write it: a (possibly quoted) local part and a domain, without
# the characters that separate addresses or start comments; non-ASCII allowed (RFC 6532).
# No Unicode white space (U+00A0, U+2028, U+3000: aiosmtplib refuses such an address) and
# no C0 or C1 control, quoted or not; RFC 5321 section 4.5.3.1 bounds the lengths.
_ATOMS = r'[^\s@<>()\[\],;:\\"\x00-\x1f\x7f-\x9f]+'
_ADDR_SPEC = re.compile(rf'(?:"(?:[^"\s\x00-\x1f\x7f-\x9f]| )*"|{_ATOMS})@{_ATOMS}')
_ODD_SPACE = re.compile(r"[^\S\x00-\x7f]|[\x80-\x9f]")  # non-ASCII white space, C1 controls
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
_ATOM_RUN = re.compile(_ATOMS)
_NAME_JUNK = " \t\"'<>,;:"


class RawHeaderPolicy(Compat32):
    """compat32 that hands a header with raw 8-bit bytes back as the str it stored (with
    surrogate escapes) instead of an `email.header.Header`: mail-parser and the `email`
    package call str methods on header values (`'Header' object has no attribute 'split'`).
    `raw_text` makes text of it; the boundary stays as the body's bytes have it."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


RAW_HEADERS = RawHeaderPolicy()


def codecs_for(label: str | None) -> tuple[str, ...]:
    """The codecs to try for a declared charset, best first; () when it declares nothing."""
    if label is None:
        return ()
    name = label.split("*", 1)[0].strip().strip("\"'\\").strip()  # RFC 2231 section 5: charset*language
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key in _UNDECLARED:
        return ()
    if key.startswith(("iso2022jp", "csiso2022jp", "cp5022")):
        return _ISO_2022_JP
    if windows := _WINDOWS.fullmatch(key):
        return (f"cp{windows[1]}",)
    if key in _ALIASES:
        name = _ALIASES[key]
    if key in _SUPERSETS or name in _SUPERSETS:
        return _SUPERSETS.get(key) or _SUPERSETS[name]
    for candidate in (name, name.removeprefix("x-"), key):  # "x-mac-roman" is mac-roman
        try:
            codec = codecs.lookup(candidate).name
        except (LookupError, ValueError):  # ValueError: a label with a NUL in it
            continue
        return () if codec in _NOT_CHARSETS else (codec,)
    return ()


def decode_bytes(data: bytes, label: str | None) -> str:
    """The declared charset (or its superset) when the bytes fit it, else UTF-8 when
    valid, else cp1252, which reads every byte: most mail that lies about its charset is
    UTF-8 or Windows-1252 (Outlook). Never raises; no surrogate or NUL in the result."""
    return scrub_text(_decoded(data, label))


def _decoded(data: bytes, label: str | None) -> str:
    for codec in dict.fromkeys((*codecs_for(label), "utf-8")):
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1").translate(_CP1252_HIGH)


def scrub_text(text: str) -> str:
    """Body text without NUL (C strings and some databases cut there) or surrogates."""
    return _UNSAFE_TEXT.sub(lambda found: "" if found[0] == "\x00" else "\ufffd", text)


def one_line(value: str) -> str:
    """A header value as one line: folding, CR/LF, NUL and other controls (C0, C1) become
    spaces, and so do U+2028 and U+2029, which split() takes as whitespace."""
    return " ".join(_CONTROLS.sub(lambda found: "\ufffd" if found[0] >= "\ud800" else " ", value).split())


def raw_text(value: object) -> str:
    """A header value as compat32 stores it (raw 8-bit bytes as surrogate escapes) as text:
    undeclared 8-bit is UTF-8 when valid (RFC 6532), else Windows-1252."""
    text = "" if value is None else str(value)
    if text.isascii():
        return text
    return decode_bytes(text.encode("utf-8", "surrogateescape"), None)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words. Whitespace between adjacent words is dropped and
    their bytes joined before decoding (section 6.2): encoders split a character across
    words. A word that is not valid stays as written."""
    if "=?" not in text:
        return text
    pieces: list[str] = []
    pending: list[tuple[str, bytes]] = []  # (charset, bytes) of adjacent words
    position = 0
    for word in ENCODED_WORD.finditer(text):
        data = _word_bytes(word[2], word[3] if word[3] is not None else word[4])
        between = text[position : word.start()]
        if data is None:
            pieces.append(_flush(pending) + between + word[0])
        elif pending and not between.strip():
            charset = word[1].lower()
            if pending[-1][0] == charset:
                pending[-1] = (charset, pending[-1][1] + data)
            else:
                pending.append((charset, data))
        else:
            pieces.append(_flush(pending) + between)
            pending.append((word[1].lower(), data))
        position = word.end()
    pieces.append(_flush(pending) + text[position:])
    return "".join(pieces)


def _word_bytes(encoding: str, encoded: str) -> bytes | None:
    data = encoded.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(data) % 4 == 1:  # a lone sextet is no byte: a truncated word
        data = data[:-1]
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return None


def _flush(pending: list[tuple[str, bytes]]) -> str:
    # Not scrubbed: header_text's one_line makes a NUL a space, as any control character.
    text = "".join(_decoded(data, charset) for charset, data in pending)
    pending.clear()
    return text


def header_text(value: object) -> str:
    """Any header value as one line of text: raw 8-bit and encoded words decoded."""
    return one_line(decode_words(raw_text(value)))


_ADDRESS_NEIGHBOURS = frozenset(" \t<>,;:()[]\"'.")


def addresses(values: Iterable[object]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) of each mailbox in address header values.
    A malformed value still gives the address it holds (missing brackets, a trailing dot,
    comments): better the customer's address than the envelope sender's."""
    found: list[tuple[str, str]] = []
    for value in values:
        source = raw_text(value)
        parsed = [(name, clean_address(address)) for name, address in email.utils.getaddresses([source])]
        valid = [(name, address) for name, address in parsed if address] or _scanned(source)
        found += [(header_text(name), address) for name, address in valid]
    return found


def _scanned(source: str) -> list[tuple[str, str]]:
    """Addresses found by their shape, each named by the text before it: for headers the
    address parser misreads (`José Pérez jose@x.example` is one address to it). Runs of
    address characters joined by "@", found in one pass (a regex search for the whole
    address would retry every run at every start: quadratic on a long header)."""
    found = []
    named_from = 0
    runs = [(run.start(), run.end()) for run in _ATOM_RUN.finditer(source)]
    for (start, end), (next_start, next_end) in itertools.pairwise(runs):
        joined = next_start == end + 1 and source[end] == "@"
        bounded = _bounded(source, start - 1) and _bounded(source, next_end)
        address = clean_address(source[start:next_end]) if joined and bounded else ""
        if address:
            found.append((source[named_from:start].rsplit(",", 1)[-1].strip(_NAME_JUNK), address))
            named_from = next_end
    return found


def _bounded(source: str, index: int) -> bool:
    """Whether the character at `index` can stand beside an address: a run of address
    characters that touches anything else (a no-break space, U+3000 in `maria\u00a0lopez@…`)
    is a piece of one, and a piece would be somebody else's address."""
    return index < 0 or index >= len(source) or source[index] in _ADDRESS_NEIGHBOURS


def clean_address(value: str) -> str:
    """The lower-cased addr-spec, or "" when `value` is not one. A trailing dot is an
    absolute domain name (some MTAs write it), the same mailbox."""
    text = raw_text(value)
    if _ODD_SPACE.search(text):  # one_line would make it a space: a different mailbox
        return ""
    address = one_line(text).strip("<> ").rstrip(".").lower()
    local = address.rsplit("@", 1)[0]
    fits = len(address) <= MAX_ADDRESS and len(local) <= MAX_LOCAL_PART
    return address if fits and _ADDR_SPEC.fullmatch(address) else ""


def message_ids(value: object) -> tuple[str, ...]:
    """Every `<id>` in a header value, without brackets, in order, without repeats."""
    if value is None:
        return ()
    return tuple(dict.fromkeys(MESSAGE_ID.findall(raw_text(value))))
