"""Golden renders: every notification template, in every language, for representative
occasions, as the exact bytes the relay would get (random tokens made predictable).

`python -m tests.golden.make` rewrites the files; tests/test_render.py compares against them,
so a change to any template, catalog or to the MIME writer shows up as a byte difference.
"""

from __future__ import annotations

import itertools
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from gateway.clock import FixedClock
from gateway.model import Address, MessageView, StoredFile, TicketView
from gateway.outbound.render import Carried, Occasion, Renderer, _sample_ticket, sample_occasion
from gateway.rules.recipients import RULES, PlannedMail
from gateway.settings import load_settings

HERE = Path(__file__).resolve().parent
LANGUAGES = ("es", "en", "pt")
TEMPLATES = (
    "acknowledgement", "agent_new_ticket", "agent_rating", "agent_reply", "agent_unverified", "commands_confirmed",
    "commands_rejected", "customer_reply", "my_tickets", "notifications_muted", "open_refused", "runaway_sender",
    "status_changed",
)  # fmt: skip
CONFIG = """
[database]
path = "{db}"
[tickets]
number_prefix = "TK"
[outbound]
host = "127.0.0.1"
port = 9
[agents]
notify_address = "agentes@estela.example"
addresses = ["csoto@estela.example"]
[[mailboxes]]
address = "soporte@estela.example"
name = "Soporte Estela & Cía"
timezone = "America/Santiago"
"""
CLOCK = FixedClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
ERROR_CODES = (
    ("unknown_command", "volar", ["estado", "prioridad"]), ("bad_status", "volando", ["abierto", "cerrado"]),
    ("bad_priority", "altísima", ["baja", "alta"]), ("bad_type", "queja", ["consulta"]),
    ("bad_incident", "roto", ["abierta"]), ("not_address", "Pedro <x>", []), ("needs_value", "#prioridad", []),
    ("cc_needs_sign", "", []), ("our_address", "soporte@estela.example", []), ("closed_never_reopens", "", []),
    ("too_many", "20", []), ("", "", []),
)  # fmt: skip


def rich_ticket() -> TicketView:
    """Every field filled, and a conversation with each kind of entry."""
    base = _sample_ticket()
    agent = Address("Carla Soto", "csoto@estela.example")
    customer = Address("Ibáñez, Íñigo <ext>", "inigo@cliente.example")
    files = (StoredFile(3, "factura.pdf", "application/pdf", 52_000, "1" * 64),)
    messages = (
        MessageView("m1@cliente.example", "inbound", customer, "2026-11-18T09:05:00+00:00", "La factura <no> llega & no sé\npor qué.", ("factura.pdf",), files=files),  # noqa: E501
        MessageView("m2@estela.example", "outbound", agent, "2026-11-19T14:30:00+00:00", "¿Nos envía el RUT?\n> citado", ()),  # noqa: E501
        MessageView("m3@estela.example", "outbound", agent, "2026-11-19T14:31:00+00:00", "Revisar con contabilidad", (), visibility="internal", note="note"),  # noqa: E501
        MessageView("m4@x.example", "inbound", Address("", "bot@x.example"), "2026-11-19T15:00:00+00:00", "Fuera de la oficina", (), visibility="internal", note="rejected: no es agente"),  # noqa: E501
        MessageView(None, "system", Address("", ""), "2026-11-19T16:00:00+00:00", "", (), visibility="system", note="prioridad cambiada"),  # noqa: E501
        MessageView("m6@cliente.example", "inbound", customer, "2026-11-20T11:00:00+00:00", "Aquí va: 76.086.428-5", ()),  # noqa: E501
    )  # fmt: skip
    return replace(
        base, number="TK-000123", subject="Factura «rechazada» & <urgente>", status="waiting_customer",
        priority="high", type="incident", mailbox="soporte@estela.example", country="CL", brand="Estela",
        product="Facturación", requester=customer, messages=messages, assignee="Carla Soto", incident="abierta",
        follow_up_of="TK-000100", fiscal_id="76.086.428-5", fiscal_id_valid=True, company="Andes SpA",
        phone="+56 2 2345 6789",
    )  # fmt: skip


def occasions(ticket: TicketView, template: str) -> Iterator[tuple[str, TicketView, Occasion]]:
    """Named occasions that together take every branch the templates have."""
    yield "sample", _sample_ticket(), sample_occasion(_sample_ticket())
    base = sample_occasion(ticket)
    errors = [{"line": f"#{code} {value}", "reason": "motivo", "code": code, "value": value, "options": options}
              for code, value, options in ERROR_CODES]  # fmt: skip
    companies = [
        {"company": "Andes SpA", "fiscal_id": "76.086.428-5", "tickets": base.extra["tickets"]},
        {"company": "", "fiscal_id": "", "tickets": [{**base.extra["tickets"][0], "requester": "otro@cliente.example",
                                                       "last_answer": "2026-11-19T14:30:00+00:00"}]},
    ]  # fmt: skip
    extra = {**base.extra, "errors": errors, "companies": companies, "subject": "Alta de «usuario»",
             "reason": "sin permiso", "left_out": ["a@x.example", "b@x.example"], "left_out_count": 5,
             "participant_limit": 10, "rating": "no", "comment": "No resolvió nada & tardó"}  # fmt: skip
    did = [{"what": "resolved"}, {"what": "closed"}, {"what": "priority", "value": "urgent"}, {"what": "reopened"}]
    trigger = ticket.messages[-1]
    changing = template in ("status_changed", "commands_confirmed", "agent_rating", "customer_reply")
    for news in ("reopened", "waiting", "resolved", "closed", None) if changing else (None,):
        change = {"news": news, "status": "resolved" if news == "resolved" else "open", "rate_yes": "s+y@x.example",
                  "rate_no": "s+n@x.example", "did": did, "priority": "urgent", "unverified": True,
                  "refused": "no es agente", "incident": "resuelta" if news is None else None,
                  "rating": {"helpful": news != "closed", "comment": "tardó & <mucho>" if news else "",
                             "recorded": news != "resolved"}}  # fmt: skip
        opener = "abrir+k1@estela.example" if news == "waiting" else ""
        yield f"news-{news}", ticket, Occasion(trigger, change, extra=extra, carried=base.carried, open_address=opener)
    bare = replace(ticket, fiscal_id_valid=False, cc=(), follow_up_of=None, incident=None, assignee=None,
                   company="", phone="", fiscal_id=None)  # fmt: skip
    empty = {**base.extra, "tickets": [], "errors": [], "subject": "Hola", "reason": "x"}
    yield "bare", bare, Occasion(bare.messages[0], {"status": "closed"}, extra=empty, carried=Carried())
    invalid = replace(ticket, fiscal_id_valid=False, requester=Address("", "sin-nombre@cliente.example"))
    closed = {"did": [{"what": "closed"}], "status": "closed"}
    yield "invalid-id", invalid, Occasion(invalid.messages[1], closed, extra=extra)


def renders(directory: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, raw mail) for every language, template and occasion."""
    config = directory / "config.toml"
    config.write_text(CONFIG.format(db=directory / "gateway.db"))
    renderer = Renderer(load_settings(config), CLOCK)
    counter = itertools.count()
    with mock.patch.object(secrets, "token_hex", lambda n=16: f"{next(counter):0{2 * n}x}"):
        for language, template in itertools.product(LANGUAGES, TEMPLATES):
            mailbox = renderer.settings.mailboxes[0].model_copy(update={"language": language})
            pieces: list[bytes] = []
            for name, ticket, occasion in occasions(rich_ticket(), template):
                for for_agents in sorted({rule.for_agents for rule in RULES if rule.template == template}):
                    planned = PlannedMail(template, (ticket.requester,), ticket.cc, "auto-generated", for_agents)
                    about: Any = None if template in ("my_tickets", "open_refused") else ticket
                    mail = renderer.render(planned, about, mailbox, occasion)
                    pieces.append(f"==== {name} for_agents={for_agents}\n".encode() + mail.raw)
            yield f"{language}/{template}.eml", b"\n".join(pieces)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, raw in renders(Path(folder)):
            (HERE / name).parent.mkdir(exist_ok=True)
            (HERE / name).write_bytes(raw)


if __name__ == "__main__":
    main()
