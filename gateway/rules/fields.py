"""Ticket fields a customer writes in the first mail (`RUT: …`, `Empresa: …`), and fiscal ids.

Pure code. Labels match whatever the case or accents; a fiscal id is normalised and
validated for its country (Chile RUT, Peru RUC, Colombia NIT, Mexico RFC); an invalid one
is kept as written and flagged, never rejected. `País:` is stored as its ISO 3166 code.
Help-centre forms write `Título:` (the customer's own title: the ticket's subject when the
mail's is empty or the form's fixed one) and `Motivo:` (a reason: the ticket's type when it
names one, else kept in the message only).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from gateway.model import Priority, TicketType
from gateway.rules.countries import country_code

# The value is the rest of the line, stripped in code: `:\s*(.+?)\s*$` tried every end of
# the value against every run of spaces after it, seconds for a line of 20,000 spaces.
FIELD_LINE = re.compile(r"^\s*([^\W\d_][\w .]{0,30}?)\s*:(.*)")
# A fiscal id may also stand inside a sentence: "Les reenvío el caso. RUC: 20100070970".
FISCAL_IN_TEXT = re.compile(r"\b(RUT|RUC|NIT|RFC|ID fiscal|Tax ID)\s*:\s*([0-9A-Za-zÑñ&.\-]{6,20})", re.IGNORECASE)
MAX_VALUE_LENGTH = 200

FISCAL_LABELS = {"rut": "CL", "ruc": "PE", "nit": "CO", "rfc": "MX", "id fiscal": "", "tax id": ""}
TEXT_LABELS = {
    "empresa": "company",
    "razon social": "company",
    "company": "company",
    "telefono": "phone",
    "phone": "phone",
    "pais": "country",
    "country": "country",
    "titulo": "title",
    "title": "title",
    "motivo": "reason",
    "reason": "reason",
    "producto": "product",
    "marca": "brand",
}
TYPE_WORDS: dict[str, str] = {
    "solicitud": TicketType.REQUEST, "request": TicketType.REQUEST,
    "incidente": TicketType.INCIDENT, "incidencia": TicketType.INCIDENT, "incident": TicketType.INCIDENT,
    "consulta": TicketType.QUESTION, "pregunta": TicketType.QUESTION, "question": TicketType.QUESTION,
    "sugerencia": TicketType.SUGGESTION, "suggestion": TicketType.SUGGESTION,
}  # fmt: skip
# A form's "Motivo:" choices that name a type without being one of its words.
REASON_TYPES: dict[str, str] = {
    **TYPE_WORDS,
    "problema": TicketType.INCIDENT, "error": TicketType.INCIDENT, "falla": TicketType.INCIDENT,
    "problema tecnico": TicketType.INCIDENT, "reclamo": TicketType.INCIDENT, "duda": TicketType.QUESTION,
    "problem": TicketType.INCIDENT, "duvida": TicketType.QUESTION, "pedido": TicketType.REQUEST,
}  # fmt: skip
PRIORITY_WORDS: dict[str, str] = {
    "baja": Priority.LOW, "bajo": Priority.LOW, "low": Priority.LOW,
    "media": Priority.MEDIUM, "medio": Priority.MEDIUM, "normal": Priority.MEDIUM, "medium": Priority.MEDIUM,
    "alta": Priority.HIGH, "alto": Priority.HIGH, "high": Priority.HIGH,
    "urgente": Priority.URGENT, "urgent": Priority.URGENT,
}  # fmt: skip
RFC_PATTERN = re.compile(r"^[A-ZÑ&]{3,4}\d{6}[A-Z0-9]{3}$")
RUC_PREFIXES = ("10", "15", "16", "17", "20")
NIT_WEIGHTS = (3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71)
RUC_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


@dataclass(frozen=True)
class FiscalId:
    value: str  # normalised when valid, else as written
    country: str  # CL, PE, CO, MX, or "" when it fits no country
    valid: bool


@dataclass(frozen=True)
class CustomerFields:
    fiscal_id: FiscalId | None = None
    company: str = ""
    phone: str = ""
    country: str = ""
    brand: str = ""
    product: str = ""
    type: TicketType | None = None
    priority: Priority | None = None
    title: str = ""
    reason: str = ""


def plain(text: str) -> str:
    """Lower case without accents: how labels and command words are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().strip()


def customer_fields(body: str, default_country: str = "") -> CustomerFields:
    return fields_from(field_lines(body), default_country)


def fields_from(lines: tuple[tuple[str, str], ...], default_country: str = "") -> CustomerFields:
    """The fields, from what `field_lines` found (cheap: a few pairs, whatever the mail's size)."""
    found: dict[str, object] = {}
    for key, value in lines:
        _take(found, key, value, default_country)
    if found.get("type") is None and "reason" in found:
        found["type"] = REASON_TYPES.get(plain(str(found["reason"])))
    return CustomerFields(**found)  # type: ignore[arg-type]


def field_lines(body: str) -> tuple[tuple[str, str], ...]:
    """(label, value) of the first line that sets each field, in order: all that
    `fields_from` needs, found in one pass over the body (in the parser worker)."""
    taken: dict[str, tuple[str, str]] = {}
    for line in body.splitlines():
        if line.lstrip().startswith(">"):
            continue  # quoted history is somebody else's mail
        found = _field_line(line)
        if found is not None and _target(found[0]) not in taken:
            taken[_target(found[0])] = found
    return tuple(taken.values())


def _field_line(line: str) -> tuple[str, str] | None:
    match = FIELD_LINE.match(line)
    if match is not None and match.group(2) and _known(plain(match.group(1))):
        written = match.group(2)
        value = written.strip() or written[-1]  # a value of blanks is its last blank, as `(.+?)\s*$` had it
        return plain(match.group(1)), value[:MAX_VALUE_LENGTH]
    fiscal = FISCAL_IN_TEXT.search(line)
    return (plain(fiscal.group(1)), fiscal.group(2)[:MAX_VALUE_LENGTH]) if fiscal else None


def _known(key: str) -> bool:
    return _target(key) != ""


def _target(key: str) -> str:
    """The field a label sets ("" for none): only its first line counts."""
    if key in FISCAL_LABELS:
        return "fiscal_id"
    if key in ("tipo", "type", "prioridad", "priority"):
        return "type" if key in ("tipo", "type") else "priority"
    return TEXT_LABELS.get(key, "")


def _take(found: dict[str, object], key: str, value: str, default_country: str) -> None:
    if key in FISCAL_LABELS and "fiscal_id" not in found:
        found["fiscal_id"] = fiscal_id(value, FISCAL_LABELS[key] or default_country)
    elif TEXT_LABELS.get(key) == "country" and "country" not in found:
        found["country"] = country_code(value) or value
    elif key in TEXT_LABELS and TEXT_LABELS[key] not in found:
        found[TEXT_LABELS[key]] = value
    elif key == "tipo" or key == "type":
        found.setdefault("type", TYPE_WORDS.get(plain(value)))
    elif key == "prioridad" or key == "priority":
        found.setdefault("priority", PRIORITY_WORDS.get(plain(value)))


def fiscal_id(written: str, country: str) -> FiscalId:
    """Normalise and validate; try every country when the label does not name one. The
    sentence's own punctuation ("RUC: 20100070970.") is not part of the id."""
    written = written.strip().rstrip(".,;:)!?").lstrip("(")
    candidates = [country] if country in VALIDATORS else list(VALIDATORS)
    for candidate in candidates:
        normalised = VALIDATORS[candidate](written)
        if normalised is not None:
            return FiscalId(normalised, candidate, True)
    return FiscalId(written.strip(), country if country in VALIDATORS else "", False)


def chile_rut(written: str) -> str | None:
    compact = re.sub(r"[.\s-]", "", written).upper()
    if not re.fullmatch(r"\d{7,8}[\dK]", compact):
        return None
    number, check = compact[:-1], compact[-1]
    total = sum(int(digit) * (2 + index % 6) for index, digit in enumerate(reversed(number)))
    expected = {11: "0", 10: "K"}.get(11 - total % 11, str(11 - total % 11))
    if check != expected:
        return None
    return f"{int(number):,}".replace(",", ".") + f"-{check}"


def peru_ruc(written: str) -> str | None:
    compact = re.sub(r"[\s-]", "", written)
    if not re.fullmatch(r"\d{11}", compact) or not compact.startswith(RUC_PREFIXES):
        return None
    check = 11 - sum(int(d) * w for d, w in zip(compact[:10], RUC_WEIGHTS, strict=True)) % 11
    return compact if {10: 0, 11: 1}.get(check, check) == int(compact[10]) else None


def colombia_nit(written: str) -> str | None:
    compact = re.sub(r"[.\s]", "", written)
    match = re.fullmatch(r"(\d{6,15})-?(\d)", compact)
    if not match:
        return None
    number, check = match.groups()
    remainder = sum(int(d) * w for d, w in zip(reversed(number), NIT_WEIGHTS, strict=False)) % 11
    expected = remainder if remainder < 2 else 11 - remainder
    return f"{number}-{check}" if expected == int(check) else None


def mexico_rfc(written: str) -> str | None:
    compact = re.sub(r"[\s-]", "", written).upper()
    return compact if RFC_PATTERN.fullmatch(compact) else None


def fiscal_key(written: str) -> str:
    """What every written form of one id has in common (`76.086.428-5`, `76086428-5`,
    `760864285`): its letters and digits, upper case, without leading zeros. Searches
    compare this; `queries.FISCAL_KEY_SQL` computes the same of a stored value."""
    return re.sub(r"[.\-\s/_]", "", written.strip().rstrip(".,;:)!?")).upper().lstrip("0")


VALIDATORS = {"CL": chile_rut, "PE": peru_ruc, "CO": colombia_nit, "MX": mexico_rfc}
