"""A seeded mutation fuzzer's mail: real-world samples, broken the ways real mail breaks.

Seeds are the project's sample mail (../shared/mail/*.eml) and CPython's email test
messages (test/test_email/data/msg_*.txt). Each fuzzed mail is a seed with one to three
mutations applied; the same seed number gives the same mails, so a failure can be
replayed by its index. Nothing here touches the network.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_MAIL = ROOT.parent / "shared" / "mail"
MAILBOX = "soporte.latam@estela.example"

Mutation = Callable[[random.Random, bytes], bytes]

# Bytes real clients and attackers put where they do not belong: Latin-1 letters, a
# no-break space, C1 NEL and CSI, UTF-8 U+2028/U+2029/U+3000, NUL, ESC, CR and LF alone.
ODD_BYTES = (b"\xf1", b"\xe9", b"\xa0", b"\x85", b"\x9b", b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\xe3\x80\x80",
             b"\x00", b"\x1b[2J", b"\r", b"\n", b"\xc3\xb1", b"\xff\xfe", b"\x7f")  # fmt: skip
BAD_CHARSETS = (b"punycode", b"idna", b"undefined", b'"utf\x00-8"', b"unicode-escape", b"utf-7", b"x-unknown",
                b"utf-8''utf-8", b"rot13", b"", b'"', b"iso-2022-jp", b"utf-16")  # fmt: skip
BROKEN_WORDS = (
    b"=?utf-8?q?hola mundo?=", b"=?utf-8?b?aG9sYQ==", b"=?utf-8?q?a=0D=0ABcc:_x@y.example?=",
    b"=?utf-8?q?a=00b=1B[31mc?=", b"=?utf-8?b?4oCo4oCp?=", b"=?x-weird?q?a=F1o?=", b"=?utf-8?x?zzz?=",
    b"=?punycode?q?abc?=", b"=?utf-8?b?!!!?=", b"=??q?abc?=", b"=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=",
    b"=?utf-8?q?=3D=3Futf-8=3Fq=3F=3D0D=3D0A=3F=3D?=", b"=?utf-8*es?q?a=C3=B1o?=", b"=?utf-16?b?//5o?=",
)  # fmt: skip


@dataclass(frozen=True)
class FuzzMail:
    index: int
    seed: str  # the sample's file name
    mutations: tuple[str, ...]
    raw: bytes


def seeds() -> list[tuple[str, bytes]]:
    """(name, bytes with CRLF line ends) of every sample mail and CPython email test message."""
    import test  # CPython's test package, where its email test messages are

    cpython = Path(test.__file__).parent / "test_email" / "data"
    paths = sorted(SHARED_MAIL.glob("*.eml")) + sorted(cpython.glob("msg_*.txt"))
    return [(path.name, crlf(path.read_bytes())) for path in paths]


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def fuzz_corpus(count: int, seed: int = 24) -> list[FuzzMail]:
    rng = random.Random(seed)
    samples = seeds()
    mails = []
    for index in range(count):
        name, raw = rng.choice(samples)
        chosen = tuple(rng.sample(sorted(MUTATIONS), rng.choice((1, 1, 2, 3))))
        for mutation in chosen:
            raw = MUTATIONS[mutation](rng, raw)
        mails.append(FuzzMail(index, name, chosen, raw))
    return mails


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header lines, each with its folded continuation lines, body)."""
    end = raw.find(b"\r\n\r\n")
    head, body = (raw, b"") if end < 0 else (raw[:end], raw[end + 4 :])
    lines: list[bytes] = []
    for line in head.split(b"\r\n"):
        if lines and line[:1] in (b" ", b"\t"):
            lines[-1] += b"\r\n" + line
        else:
            lines.append(line)
    return lines, body


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _header_index(rng: random.Random, lines: list[bytes], names: tuple[bytes, ...]) -> int:
    wanted = [i for i, line in enumerate(lines) if line.split(b":", 1)[0].strip().lower() in names]
    return rng.choice(wanted) if wanted else rng.randrange(len(lines))


def byte_flips(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    head_end = max(raw.find(b"\r\n\r\n"), 1)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(head_end if rng.random() < 0.5 else len(data))
        data[at] = data[at] ^ (1 << rng.randrange(8)) if rng.random() < 0.7 else rng.randrange(256)
    return bytes(data)


def duplicate_header(rng: random.Random, raw: bytes) -> bytes:
    lines, body = _split(raw)
    names = (b"from", b"to", b"cc", b"subject", b"content-type", b"message-id", b"mime-version", b"references")
    at = _header_index(rng, lines, names)
    return _join(lines[: at + 1] + [lines[at]] * rng.choice((1, 2, 5, 50)) + lines[at + 1 :], body)


def truncated_boundary(rng: random.Random, raw: bytes) -> bytes:
    found = re.search(rb'boundary="?([^";\r\n]+)"?', raw, re.IGNORECASE)
    if found is None:  # make one: a multipart whose boundary never appears
        lines, body = _split(raw)
        lines = [line for line in lines if not line.lower().startswith(b"content-type:")]
        return _join([*lines, b"Content-Type: multipart/mixed; boundary=nunca"], body)
    marker = b"--" + found[1]
    choice = rng.randrange(4)
    if choice == 0:  # cut off part-way through a part
        last = raw.rfind(marker)
        return raw[: rng.randint(found.end(), max(found.end(), last + len(marker) // 2))]
    if choice == 1:  # no closing delimiter
        return raw.replace(marker + b"--", b"")
    if choice == 2:  # no boundary parameter
        return raw[: found.start()] + raw[found.end() :]
    return raw[: found.start(1)] + found[1][: len(found[1]) // 2] + raw[found.end(1) :]  # never appears


def inject_8bit(rng: random.Random, raw: bytes) -> bytes:
    lines, body = _split(raw)
    names = (b"from", b"to", b"cc", b"subject", b"content-disposition", b"content-type", b"reply-to")
    at = _header_index(rng, lines, names)
    line = lines[at]
    for _ in range(rng.randint(1, 4)):
        where = rng.randint(min(len(line), line.find(b":") + 1), len(line))
        line = line[:where] + rng.choice(ODD_BYTES) + line[where:]
    lines[at] = line
    return _join(lines, body)


def deep_nesting(rng: random.Random, raw: bytes) -> bytes:
    """The mail inside a few to a few thousand levels of multiparts or attached messages."""
    lines, body = _split(raw)
    inner = [line for line in lines if line.lower().startswith(b"content-")]
    outer = [line for line in lines if not line.lower().startswith(b"content-")]
    levels = rng.choice((rng.randint(3, 30), rng.randint(90, 130), rng.randint(300, 3000)))
    if rng.random() < 0.5:
        wrapped = b"Content-Type: message/rfc822\r\n\r\n" * (levels - 1) + raw
        return _join([*outer, b"Content-Type: message/rfc822"], wrapped)
    level = b"--fz%d\r\nContent-Type: multipart/mixed; boundary=fz%d\r\n\r\n"
    opening = b"".join(level % (i, i + 1) for i in range(levels))
    closing = b"".join(b"\r\n--fz%d--" % i for i in reversed(range(levels + 1))) if rng.random() < 0.5 else b""
    innermost = b"--fz%d\r\n" % levels + b"\r\n".join(inner) + b"\r\n\r\n" + body + closing
    return _join([*outer, b"Content-Type: multipart/mixed; boundary=fz0"], opening + innermost)


def long_line(rng: random.Random, raw: bytes) -> bytes:
    size = rng.choice((990, 1001, 2000, 20_000, 200_000))
    filler = bytes(rng.choice(b"abcdefghij \xf1") for _ in range(64)) * (size // 64 + 1)
    lines, body = _split(raw)
    if rng.random() < 0.5:
        at = _header_index(rng, lines, (b"subject", b"from", b"to", b"references", b"content-type"))
        folded = b"\r\n " if rng.random() < 0.3 else b""
        lines[at] += folded + filler[:size]
        return _join(lines, body)
    return _join(lines, body + b"\r\n" + filler[:size] + b"\r\n")


def bad_charset(rng: random.Random, raw: bytes) -> bytes:
    charset = rng.choice(BAD_CHARSETS)
    parameter = b"charset*=" + charset if rng.random() < 0.2 else b"charset=" + charset
    found = list(re.finditer(rb"charset\*?=(\"[^\"]*\"|[^;\s]*)", raw, re.IGNORECASE))
    if found:
        hit = rng.choice(found)
        return raw[: hit.start()] + parameter + raw[hit.end() :]
    lines, body = _split(raw)
    lines = [line for line in lines if not line.lower().startswith(b"content-type:")]
    return _join([*lines, b"Content-Type: text/plain; " + parameter], body)


def broken_encoded_word(rng: random.Random, raw: bytes) -> bytes:
    lines, body = _split(raw)
    at = _header_index(rng, lines, (b"subject", b"from", b"to", b"cc", b"content-disposition"))
    word = rng.choice(BROKEN_WORDS)
    name = lines[at].split(b":", 1)[0]
    if name.lower() in (b"from", b"to", b"cc"):
        lines[at] = name + b": " + word + b" <" + _address(lines[at]) + b">"
    elif name.lower() == b"content-disposition":
        lines[at] = name + b': attachment; filename="' + word + b'"'
    else:
        lines[at] = name + b": Re: " + word + b" " + word
    return _join(lines, body)


def _address(line: bytes) -> bytes:
    found = re.search(rb"[\w.+-]+@[\w.-]+", line)
    return found[0] if found else b"cliente@empresa.example"


MUTATIONS: dict[str, Mutation] = {
    "byte flips": byte_flips,
    "header duplication": duplicate_header,
    "truncated boundary": truncated_boundary,
    "8-bit injection": inject_8bit,
    "deep nesting": deep_nesting,
    "long lines": long_line,
    "bad charset": bad_charset,
    "broken encoded word": broken_encoded_word,
}
