"""What a subject says: a reply's prefixes (Re:, RV:, AW: …), a request for a customer's
ticket list, a form's generic subject, a closed ticket's subject for its follow-up.

Pure code. Prefixes are matched in any case and any number, as mail clients stack them in
every language ("RE: RV: Fwd:").
"""

from __future__ import annotations

import re

from gateway.rules.subject_token import without_tokens

MY_TICKETS_SUBJECTS = frozenset({"mis tickets", "#mis-tickets", "my tickets", "meus tickets", "#my-tickets"})
MY_OPEN_TICKETS_SUBJECTS = frozenset({
    "mis tickets abiertos", "#mis-tickets-abiertos", "my open tickets", "#my-open-tickets",
    "meus tickets abertos", "#meus-tickets-abertos",
})  # fmt: skip


def asks_for_my_tickets(subject: str) -> bool:
    """A mail whose subject is "Mis tickets" or "Mis tickets abiertos" (any case, behind any
    Re:) asks for a list."""
    return _bare(subject) in MY_TICKETS_SUBJECTS | MY_OPEN_TICKETS_SUBJECTS


def asks_for_open_only(subject: str) -> bool:
    return _bare(subject) in MY_OPEN_TICKETS_SUBJECTS


def _bare(subject: str) -> str:
    return " ".join(PREFIXES.sub("", subject).split()).lower()


PREFIXES = re.compile(r"^\s*((re|rv|fw|fwd|tr|enc|aw|wg|res)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


# Subjects a web form or a hurried customer writes that say nothing of the case: a
# `Título:` line replaces them (in any case, behind any Re:/Fwd:).
GENERIC_SUBJECTS = frozenset({
    "", "(sin asunto)", "sin asunto", "no subject", "(no subject)", "sem assunto", "(sem assunto)",
    "nuevo ticket", "nueva solicitud", "nuevo caso", "formulario de contacto", "formulario web", "contacto",
    "soporte", "ayuda", "consulta", "solicitud", "new ticket", "contact form", "web form", "support", "help",
    "novo ticket", "formulário de contato", "suporte", "ajuda", "ticket", "caso",
})  # fmt: skip


def ticket_subject(subject: str, title: str) -> str:
    """A help-centre form's `Título:` line names the case when the mail's subject does not
    (empty, or the form's fixed "Formulario de contacto")."""
    said = " ".join(PREFIXES.sub("", subject).split()).casefold()
    return title.strip() if title.strip() and said in GENERIC_SUBJECTS else (subject or "(sin asunto)")


def follow_up_subject(subject: str, prefix: str, previous: str = "") -> str:
    """A closed ticket's reply, as the subject of its follow-up: no Re:, no old token, and
    none of what our own subjects add after the ticket's subject (" · Cerrado",
    " · confirmación de cambio"): a reply to our mail is the closed ticket's subject again."""
    cleaned = " ".join(PREFIXES.sub("", without_tokens(subject, prefix)).split())
    before = " ".join(previous.split())
    if before and (cleaned.casefold() == before.casefold() or cleaned.casefold().startswith(f"{before} · ".casefold())):
        return before
    return cleaned or before or subject
