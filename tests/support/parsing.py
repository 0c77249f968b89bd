"""Reading what the parser made of a mail: every string it holds, one field by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from gateway.model import ParsedMail
from tests.conftest import SHARED_MAIL


def corpus() -> list[Path]:
    """CPython's own test package ships odd real-world mail; with it, the shared samples."""
    import test

    data = Path(test.__file__).parent / "test_email" / "data"
    return sorted(data.glob("msg_*.txt")) + sorted(SHARED_MAIL.glob("*.eml"))


def strings(value: object) -> Iterator[str]:
    """Every str a parsed mail holds, at any depth."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from strings(getattr(value, field.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from strings(item)


def surrogate_or_nul(text: str) -> bool:
    return any(char == "\x00" or "\ud800" <= char <= "\udfff" for char in text)


def sender_of(mail: ParsedMail) -> tuple[str, str] | None:
    return (mail.sender.name, mail.sender.address) if mail.sender else None


def read_field(mail: ParsedMail, what: str) -> object:
    readers = {
        "sender": sender_of,
        "cc": lambda mail: tuple((a.name, a.address) for a in mail.cc),
        "from": lambda mail: mail.header("from"),
        "filenames": lambda mail: tuple(a.filename for a in mail.attachments),
        "diagnostics": lambda mail: tuple(f.diagnostic for f in mail.report.failures) if mail.report else None,
    }
    return readers[what](mail) if what in readers else getattr(mail, what)
