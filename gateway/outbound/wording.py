"""How people read dates and names in our mail: pure, per language (es, en, pt), no I/O.

Small tables instead of a locale library: three languages, one short date form each, and
no dependence on the host's locales (a `setlocale` call is process-wide and not thread-safe).
The forms follow CLDR's medium date-time patterns: es "lun. 30 nov. 2026, 10:25",
en "Mon, 30 Nov 2026, 10:25" (day first, 24 hours: read the same on both sides of the
Atlantic), pt "seg., 30 de nov. de 2026, 10:25".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from gateway.model import Address

WEEKDAYS = {  # Monday first, as datetime.weekday() counts
    "es": ("lun.", "mar.", "mié.", "jue.", "vie.", "sáb.", "dom."),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "pt": ("seg.", "ter.", "qua.", "qui.", "sex.", "sáb.", "dom."),
}
MONTHS = {
    "es": ("ene.", "feb.", "mar.", "abr.", "may.", "jun.", "jul.", "ago.", "sept.", "oct.", "nov.", "dic."),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "pt": ("jan.", "fev.", "mar.", "abr.", "mai.", "jun.", "jul.", "ago.", "set.", "out.", "nov.", "dez."),
}
PATTERNS = {
    "es": "{weekday} {day} {month} {year}, {time}",
    "en": "{weekday}, {day} {month} {year}, {time}",
    "pt": "{weekday}, {day} de {month} de {year}, {time}",
}
DAY_PATTERNS = {"es": "{day} {month} {year}", "en": "{day} {month} {year}", "pt": "{day} de {month} de {year}"}

# "Pérez, María (Distribuidora Andes)", "Pérez, María [EXT]", "María - Ventas": what
# Exchange address books and mailing lists add after a name is not part of it.
TRAILING_NOTE = re.compile(r"\s*(\([^)]*\)|\[[^\]]*\]|<[^>]*>|\s-\s.*)\s*$")
NAME_LIMIT = 80  # a display name is written by the sender: a greeting stays one short line


def moment(value: str | datetime | None) -> datetime | None:
    """A stored time (ISO 8601, as clock.timestamp writes it) as an aware datetime; None if
    it is not one (a template may hand us anything)."""
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(str(value or "").strip())
        except ValueError:
            return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)  # we store UTC


def when(value: str | datetime | None, language: str, zone: tzinfo) -> str:
    """The time as the mailbox's readers write it ("lun. 30 nov. 2026, 10:25"), in its zone; text
    that is no time comes back as it was."""
    found = moment(value)
    if found is None:
        return str(value or "")
    local = found.astimezone(zone)
    words = language if language in PATTERNS else "es"
    return PATTERNS[words].format(
        weekday=WEEKDAYS[words][local.weekday()], day=local.day, month=MONTHS[words][local.month - 1],
        year=local.year, time=f"{local.hour:02d}:{local.minute:02d}",
    )  # fmt: skip


def day(value: str | datetime | None, language: str, zone: tzinfo) -> str:
    """A date alone ("30 nov. 2026"), for lists."""
    found = moment(value)
    if found is None:
        return str(value or "")
    local = found.astimezone(zone)
    words = language if language in DAY_PATTERNS else "es"
    return DAY_PATTERNS[words].format(day=local.day, month=MONTHS[words][local.month - 1], year=local.year)


def greeting_name(person: Address) -> str:
    """The name to greet someone by, or "" when their mail gave none worth using.

    Outlook and Exchange show directory names as "Surname, Given" ("Ibáñez, Íñigo"): we greet
    the given name. Other names are kept whole (Spanish given names are often two words:
    "María José"). A name that is only the address, or looks like one, is no name.
    """
    name = " ".join(person.name.replace('"', " ").split())[:NAME_LIMIT]
    name = TRAILING_NOTE.sub("", name).strip(" ,;'")
    if not name or "@" in name or name.lower() == person.address.lower():
        return ""
    surname, comma, given = name.partition(",")
    if comma and given.strip() and surname.strip() and "," not in given:
        name = given.strip()
    if name.isupper() and len(name) > 3:  # "IBÁÑEZ, ÍÑIGO" from an old directory
        name = name.title()
    return name
