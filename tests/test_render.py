"""Rendering, without I/O: every template in every language, headers, attachments."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.model import Address, Attachment
from gateway.outbound.render import Occasion, Renderer, TemplateCheckError, _sample_ticket, sample_occasion
from gateway.rules.recipients import RULES, PlannedMail
from gateway.settings import load_settings
from tests.conftest import write_config
from tests.golden.make import renders

CLOCK = FixedClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    return Renderer(load_settings(write_config(tmp_path)), CLOCK)


NO_TICKET = ("my_tickets", "open_refused")  # mail about no one ticket: no conversation to quote


@pytest.mark.parametrize("language", ["es", "en", "pt"])
@pytest.mark.parametrize(
    "rule",
    [rule for rule in RULES if rule.template not in NO_TICKET],
    ids=lambda rule: f"{rule.event}-{rule.template}",
)
def test_every_template_renders_both_parts_with_the_token(renderer: Renderer, language: str, rule) -> None:
    ticket = _sample_ticket()
    mailbox = renderer.settings.mailboxes[0].model_copy(update={"language": language})
    planned = PlannedMail(rule.template, (ticket.requester,), ticket.cc, rule.auto_submitted, rule.for_agents)
    mail = renderer.render(planned, ticket, mailbox, sample_occasion(ticket))
    message = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert message["Subject"].startswith("[#TK-000000]")
    assert message["Auto-Submitted"] == rule.auto_submitted
    assert message["In-Reply-To"] == "<sample@cliente.example>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hola." in text and "Hola." in html
    assert mail.recipients == ("maria@cliente.example", "jorge@cliente.example")


def test_html_part_escapes_what_customers_wrote(renderer: Renderer) -> None:
    ticket = _sample_ticket()
    hostile = ticket.messages[0].__class__(
        "x@cliente.example", "inbound", Address("<b>Eve</b>", "eve@x.example"), "hoy", "<script>alert(1)</script>", ()
    )
    ticket = replace(ticket, messages=(*ticket.messages, hostile))
    planned = PlannedMail("customer_reply", (ticket.requester,), (), "auto-generated", True)
    mail = renderer.render(planned, ticket, renderer.settings.mailboxes[0], Occasion(hostile))
    html = email.message_from_bytes(mail.raw, policy=email.policy.default).get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_agent_reply_attachments_go_to_customers_not_to_agents(renderer: Renderer) -> None:
    ticket = _sample_ticket()
    attachment = Attachment("parche ñ.zip", "application/zip", b"PK\x03\x04data")
    mailbox = renderer.settings.mailboxes[0]
    for for_agents, expected in ((False, ["parche ñ.zip"]), (True, [])):
        planned = PlannedMail("agent_reply", (ticket.requester,), (), "auto-generated", for_agents)
        mail = renderer.render(planned, ticket, mailbox, Occasion(ticket.messages[-1], attachments=(attachment,)))
        message = email.message_from_bytes(mail.raw, policy=email.policy.default)
        assert [part.get_filename() for part in message.iter_attachments()] == expected


def test_a_broken_override_is_named_at_start(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides" / "es"
    overrides.mkdir(parents=True)
    (overrides / "acknowledgement.txt").write_text("Hola {{ ticket.nombre_que_no_existe }}")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[outbound]\n", f'[outbound]\ntemplates_dir = "{overrides.parent}"\n'))
    with pytest.raises(TemplateCheckError, match="es/acknowledgement"):
        Renderer(load_settings(config), CLOCK).check()


@pytest.mark.parametrize("language", ["es", "en", "pt"])
def test_my_tickets_lists_every_ticket_without_a_token(renderer: Renderer, language: str) -> None:
    ticket = _sample_ticket()
    mailbox = renderer.settings.mailboxes[0].model_copy(update={"language": language})
    planned = PlannedMail("my_tickets", (ticket.requester,), (), "auto-replied", False)
    mail = renderer.render(planned, None, mailbox, sample_occasion(ticket))
    message = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert "[#" not in message["Subject"] and message["In-Reply-To"] is None
    assert "TK-000000" in message.get_body(("plain",)).get_content()
    assert "TK-000000" in message.get_body(("html",)).get_content()


def test_mime_headers_fold_cleanly_and_parse_back() -> None:
    from gateway.outbound import mime

    people = [(f"Ñandú Pérez-Öğretmen, Nº {index} «jefa»", f"p{index}@andes.example") for index in range(12)]
    subject = "Ñ" * 40 + " factura electrónica rechazada por el SII " * 4
    raw = mime.compose(
        [("From", mime.mailbox("Soporte LATAM", "s@estela.example")), ("Cc", mime.address_list(people)),
         ("Subject", mime.unstructured(subject)), ("To", mime.mailbox('Soto, "Carla"', "c@estela.example"))],
        "texto ñ\nsegunda línea " + "x" * 200, "<p>hola</p>",
        [("año ñ.pdf", "application/pdf", b"%PDF" * 1000), ("plain.txt", "text/plain", b"ok")],
    )  # fmt: skip
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert max(len(line) for line in header.split(b"\r\n")) <= 80
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == " ".join(subject.split())
    assert [(a.display_name, a.addr_spec) for a in message["Cc"].addresses] == people
    assert message["To"].addresses[0].display_name == 'Soto, "Carla"'
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n").startswith("texto ñ\nsegunda línea xx")
    assert [part.get_filename() for part in message.iter_attachments()] == ["año ñ.pdf", "plain.txt"]
    assert next(message.iter_attachments()).get_content() == b"%PDF" * 1000


def test_mime_values_cannot_open_a_new_header() -> None:
    from gateway.outbound import mime

    raw = mime.compose(
        [("Subject", mime.unstructured("hola\r\nBcc: victim@example.com")),
         ("To", mime.mailbox("Eve\nBcc: v@x.example", "eve@x.example"))],
        "x", "y",
    )  # fmt: skip
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Bcc"] is None and "victim" in message["Subject"]


def test_every_language_renders_exactly_the_golden_mail(tmp_path: Path) -> None:
    """Customers' and agents' mail, byte for byte (`python -m tests.golden.make` rewrites the
    files after a deliberate change; the diff of tests/golden/ shows what readers will see)."""
    golden = Path(__file__).parent / "golden"
    rendered = dict(renders(tmp_path))
    assert sorted(rendered) == sorted(str(p.relative_to(golden)) for p in golden.glob("*/*.eml"))
    for name, raw in rendered.items():
        assert raw == (golden / name).read_bytes(), f"{name} differs from its golden file"


def test_an_override_folder_holds_per_language_files_first_then_shared_ones(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides"
    (overrides / "en").mkdir(parents=True)
    (overrides / "en" / "acknowledgement.txt").write_text("Only for English readers {{ token }}\n")
    (overrides / "acknowledgement.txt").write_text('{{ _("Hello") }}, {{ token }}\n')
    # Written for per-language folders: extends and includes name the language.
    (overrides / "pt").mkdir()
    (overrides / "pt" / "acknowledgement.html").write_text(
        '{% extends "pt/_layout.html" %}{% block content %}<p>Recebemos.</p>{% endblock %}'
    )
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[outbound]\n", f'[outbound]\ntemplates_dir = "{overrides}"\n'))
    renderer = Renderer(load_settings(config), CLOCK)
    renderer.check()
    ticket = _sample_ticket()
    planned = PlannedMail("acknowledgement", (ticket.requester,), (), "auto-replied", False)
    parts = {}
    for language in ("es", "en", "pt"):
        mailbox = renderer.settings.mailboxes[0].model_copy(update={"language": language})
        message = email.message_from_bytes(renderer.render(planned, ticket, mailbox, sample_occasion(ticket)).raw,
                                           policy=email.policy.default)  # fmt: skip
        parts[language] = (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())
    assert parts["es"][0].strip() == "Hola, [#TK-000000]"
    assert parts["pt"][0].strip() == "Olá, [#TK-000000]"
    assert parts["en"][0].strip() == "Only for English readers [#TK-000000]"
    assert "<p>Recebemos.</p>" in parts["pt"][1] and "Recibimos su solicitud" in parts["es"][1]
    assert '<html lang="pt">' in parts["pt"][1]


def test_every_string_of_the_templates_is_translated_in_every_catalog() -> None:
    """A string missing from a catalog would reach Spanish readers in English, silently."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    with (root / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    wanted = {found[2] for found in extract_from_dir(str(root), method_map, options_map)}
    assert len(wanted) > 100
    for language in ("es", "pt"):
        with (root / "gateway" / "locale" / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
            translated = {m.id for m in read_po(source) if m.id and m.string and not m.fuzzy}
        assert wanted - translated == set(), language
