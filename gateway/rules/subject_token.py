"""Ticket numbers and the `[#TK-000123]` token a subject carries: the one place that
spells them, for what we write and for what we read back.

Every subject we send carries the token, so a reply finds its ticket; people and mail
clients mangle it (`tk-123`, `TK-000123` without the brackets, `[# TK-123 ]`), so reading
accepts any case, with or without `[#…]`, and never inside a longer word. The prefix comes
from settings (`[tickets] number_prefix`) and is escaped before it enters a pattern.
"""

from __future__ import annotations

import re

NUMBER_DIGITS = 6
MAX_DIGITS = 12  # more is no number of ours, and int() of it stays cheap
# A ticket number under any prefix, as signed addresses carry it (case-insensitive there).
DIGITS = r"\d+"
ANY_NUMBER = rf"[a-z][a-z0-9]*-{DIGITS}"


def format_number(prefix: str, sequence: int) -> str:
    return f"{prefix}-{sequence:0{NUMBER_DIGITS}d}"


def number_format_sql(prefix: str) -> str:
    """`format_number` as SQLite's printf() format, for a number made inside the statement
    that stores it (desk/store.py checks the two agree)."""
    return f"{prefix.replace('%', '%%')}-%0{NUMBER_DIGITS}d"


def ticket_token(number: str) -> str:
    """The token every outbound subject carries, so a reply finds its ticket."""
    return f"[#{number}]"


def _number(prefix: str, digits: str) -> str:
    return rf"(?<![A-Za-z0-9]){re.escape(prefix)}-{digits}"


def token_pattern(prefix: str) -> re.Pattern[str]:
    # Anywhere in the subject, any case, with or without "[#...]"; not inside a longer word.
    return re.compile(_number(prefix, rf"(\d{{1,{MAX_DIGITS}}})(?!\d)"), re.IGNORECASE)


def ticket_numbers_in(subject: str, prefix: str) -> list[str]:
    """Ticket numbers named in a subject, normalised (`tk-123` → `TK-000123`), in order."""
    found = (format_number(prefix, int(digits)) for digits in token_pattern(prefix).findall(subject))
    return list(dict.fromkeys(found))


def without_tokens(subject: str, prefix: str) -> str:
    """The subject with every ticket token (bracketed or bare) taken out."""
    bracketed = rf"\[?#?\s*{_number(prefix, DIGITS)}\s*\]?"
    return re.sub(bracketed, "", subject, flags=re.IGNORECASE)
