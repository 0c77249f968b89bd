"""The desk's pure rules, as tables: lifecycle, commands, customer fields, tokens, quotes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.model import Status
from gateway.rules.commands import Proof, Role, judge_customer_commands, parse_commands
from gateway.rules.fields import customer_fields, fiscal_id
from gateway.rules.lifecycle import (
    TransitionError,
    after_agent_reply,
    after_customer_reply,
    auto_close_due,
    change,
    customers_are_told,
)
from gateway.rules.signed_addresses import Signer, looks_signed, message_token
from gateway.rules.subjects import asks_for_my_tickets, follow_up_subject

S = Status


@pytest.mark.parametrize(
    ("current", "expected"),
    [(S.OPEN, None), (S.IN_PROGRESS, None), (S.WAITING_CUSTOMER, S.OPEN), (S.RESOLVED, S.OPEN)],
)
def test_customer_reply(current: Status, expected: Status | None) -> None:
    assert after_customer_reply(current) is expected


def test_a_closed_ticket_never_reopens() -> None:
    with pytest.raises(TransitionError):
        after_customer_reply(S.CLOSED)
    with pytest.raises(TransitionError):
        change(S.CLOSED, S.OPEN)
    assert change(S.CLOSED, S.CLOSED) is None


@pytest.mark.parametrize(
    ("current", "configured", "expected"),
    [
        (S.OPEN, S.WAITING_CUSTOMER, S.WAITING_CUSTOMER),
        (S.IN_PROGRESS, S.WAITING_CUSTOMER, S.WAITING_CUSTOMER),
        (S.WAITING_CUSTOMER, S.WAITING_CUSTOMER, None),
        (S.RESOLVED, S.WAITING_CUSTOMER, None),
        (S.OPEN, None, None),
        (S.OPEN, S.IN_PROGRESS, S.IN_PROGRESS),
    ],
)
def test_agent_reply(current: Status, configured: Status | None, expected: Status | None) -> None:
    assert after_agent_reply(current, configured) is expected


@pytest.mark.parametrize(
    ("old", "new", "told"),
    [(S.OPEN, S.RESOLVED, True), (S.RESOLVED, S.CLOSED, True), (S.RESOLVED, S.OPEN, True),
     (S.OPEN, S.IN_PROGRESS, False), (S.WAITING_CUSTOMER, S.OPEN, False)],
)  # fmt: skip
def test_which_changes_customers_hear_of(old: Status, new: Status, told: bool) -> None:
    assert customers_are_told(old, new) is told


def test_auto_close_after_the_configured_hours() -> None:
    resolved = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert not auto_close_due(S.RESOLVED, resolved, resolved + timedelta(hours=47), 48)
    assert auto_close_due(S.RESOLVED, resolved, resolved + timedelta(hours=48), 48)
    assert not auto_close_due(S.OPEN, resolved, resolved + timedelta(hours=49), 48)


@pytest.mark.parametrize(
    ("text", "changes", "internal"),
    [
        ("#estado resuelto\nlisto", {"status": "resolved"}, False),
        ("#Estado En Progreso", {"status": "in_progress"}, False),
        ("#status solved", {"status": "resolved"}, False),
        ("#status pending", {"status": "waiting_customer"}, False),
        ("#PRIORIDAD Alta", {"priority": "high"}, False),
        ("#priority urgent", {"priority": "urgent"}, False),
        ("#tipo sugerencia", {"type": "suggestion"}, False),
        ("#asignar Ana@Vendor.example", {"assignee": "ana@vendor.example"}, False),
        ("#país Perú\n#marca Estela\n#producto POS", {"country": "Perú", "brand": "Estela", "product": "POS"}, False),
        ("#nota\nsolo para agentes", {}, True),
        ("#note", {}, True),
        ("\n\n#estado cerrado\n\ntexto", {"status": "closed"}, False),
    ],
)
def test_agent_commands(text: str, changes: dict[str, str], internal: bool) -> None:
    parsed = parse_commands(text, agent=True, incident_values=("Incidencia en progreso",))
    assert parsed.changes == changes and parsed.internal is internal and parsed.errors == ()
    assert not parsed.text.startswith("#")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("#estado volando", "'volando' is not a status"),
        ("#foo bar", "unknown command #foo"),
        ("#asignar ana", "not an email address"),
        ("#cc", "#cc needs"),
        ("#cc +no-es-correo", "not an email address"),
        ("#incidencia inventada", "not an incident status"),
        ("#producto", "#producto needs a value"),
    ],
)
def test_bad_agent_commands_name_the_line_and_why(text: str, reason: str) -> None:
    [error] = parse_commands(text, agent=True, incident_values=("Incidencia en progreso",)).errors
    assert error.line == text and reason in error.reason


def test_an_agents_commands_count_anywhere_in_the_new_text() -> None:
    parsed = parse_commands("Hola,\n\n#estado resuelto\nYa quedó.\n#prioridad alta", agent=True)
    assert parsed.changes == {"status": "resolved", "priority": "high"}
    assert parsed.text == "Hola,\n\nYa quedó." and "#" not in parsed.text
    assert parsed.written == {"status": "#estado resuelto", "priority": "#prioridad alta"}


def test_a_customers_commands_are_the_top_lines_only() -> None:
    parsed = parse_commands("Hola,\n#cerrar", agent=False)
    assert parsed.changes == {} and parsed.text == "Hola,\n#cerrar"


@pytest.mark.parametrize(
    ("line", "assignee"),
    [
        ("#asignar pedro@x.example", "pedro@x.example"),
        ("#asignar <Pedro@X.example>", "pedro@x.example"),
        ("#asignar Pedro Pérez <pedro@x.example>", "pedro@x.example"),
        ('#assign "Pérez, Pedro" <pedro@x.example>', "pedro@x.example"),
    ],
)
def test_assign_takes_an_address_in_any_written_form(line: str, assignee: str) -> None:
    parsed = parse_commands(line, agent=True)
    assert parsed.errors == () and parsed.changes == {"assignee": assignee}


@pytest.mark.parametrize(
    ("line", "code", "value"),
    [
        ("#estado volando", "bad_status", "volando"),
        ("#Prioridad Altísima", "bad_priority", "Altísima"),
        ("#estdo resuelto", "unknown_command", "estdo"),
        ("#asignar Pedro Pérez", "not_address", "Pedro Pérez"),
        ("#cc", "cc_needs_sign", ""),
        ("#marca", "needs_value", "#marca"),
    ],
)
def test_command_errors_carry_a_code_for_the_mailbox_language(line: str, code: str, value: str) -> None:
    [error] = parse_commands(f"Hola,\n  {line}\nGracias", agent=True).errors
    assert (error.line, error.code, error.value) == (line, code, value)


def test_customers_may_only_prioritise_and_close() -> None:
    assert parse_commands("#prioridad baja\n#cerrar", agent=False).changes == {"priority": "low", "status": "closed"}
    assert parse_commands("#resuelto", agent=False).changes == {"status": "resolved"}
    other = parse_commands("#estado cerrado\n#1 en la lista", agent=False)
    assert other.changes == {} and other.errors == () and other.text.startswith("#estado")


# Who may run which customer command given the proof (issue 14 item 4): only the requester,
# only in a reply to a mail we sent them or through a signed address; all lines or none.
@pytest.mark.parametrize(
    ("text", "role", "proof", "changes", "refused"),
    [
        ("#cerrar\nGracias", Role.REQUESTER, Proof.REPLY, {"status": "closed"}, ""),
        ("#resuelto", Role.REQUESTER, Proof.SIGNED, {"status": "resolved"}, ""),
        ("#prioridad baja\n#cerrar", Role.REQUESTER, Proof.REPLY, {"priority": "low", "status": "closed"}, ""),
        ("#cerrar\nGracias", Role.REQUESTER, Proof.NONE, {}, "not a reply to a mail we sent"),
        ("#prioridad urgente", Role.REQUESTER, Proof.NONE, {}, "not a reply to a mail we sent"),
        ("#resuelto", Role.CC, Proof.REPLY, {}, "only the ticket's requester"),
        ("#cerrar", Role.CC, Proof.SIGNED, {}, "only the ticket's requester"),
        ("#cerrar", Role.OTHER, Proof.REPLY, {}, "not the ticket's requester"),
        ("#cerrar", Role.OTHER, Proof.NONE, {}, "not the ticket's requester"),
        ("Sin comandos.\n#cerrar", Role.REQUESTER, Proof.NONE, {}, ""),  # past the text: just text
        ("#estado cerrado", Role.CC, Proof.NONE, {}, ""),  # an agent's command from a customer is text
    ],
)  # fmt: skip
def test_who_may_run_which_customer_command(text: str, role: Role, proof: Proof, changes: dict, refused: str) -> None:
    judged = judge_customer_commands(text, role, proof)
    assert judged.honoured.changes == changes
    assert (refused in judged.refused) if refused else judged.refused == ""
    if judged.refused:  # the command lines are kept as the text agents read
        assert judged.honoured.text == text and "#" in judged.refused


@pytest.mark.parametrize(
    ("line", "value", "country", "valid"),
    [
        ("RUT: 76.086.428-5", "76.086.428-5", "CL", True),
        ("rut: 76086428-5", "76.086.428-5", "CL", True),
        ("RUT: 76.086.428-6", "76.086.428-6", "CL", False),
        ("RUC: 20100070970", "20100070970", "PE", True),
        ("RUC: 20100070971", "20100070971", "PE", False),
        ("NIT: 800.197.268-4", "800197268-4", "CO", True),
        ("NIT: 800197268-5", "800197268-5", "CO", False),
        ("RFC: gode-561231-gr8", "GODE561231GR8", "MX", True),
        ("RFC: 123", "123", "MX", False),
        ("ID fiscal: 20100070970", "20100070970", "PE", True),
        ("Les reenvío el caso. RUC: 20100070970", "20100070970", "PE", True),
    ],
)
def test_fiscal_ids_are_normalised_and_validated(line: str, value: str, country: str, valid: bool) -> None:
    found = customer_fields(line).fiscal_id
    assert found is not None and (found.value, found.country, found.valid) == (value, country, valid)


def test_customer_field_lines_any_case_and_accents() -> None:
    fields = customer_fields(
        "Hola\nRAZÓN SOCIAL: Andes SpA\ntelefono: +56 2 1234\nTipo: consulta\nprioridad: ALTA\nPais: Chile\n"
        "> Empresa: citada, no cuenta"
    )
    assert (fields.company, fields.phone, fields.type, fields.priority, fields.country) == (
        "Andes SpA", "+56 2 1234", "question", "high", "CL",
    )  # fmt: skip
    assert fiscal_id("no es un id", "").valid is False


def test_signed_addresses_verify_only_untouched() -> None:
    signer = Signer(b"secret")
    address = signer.reply_address("soporte@estela.example", "TK-000007", "csoto@estela.example")
    assert signer.reply_address_verifies(address, "TK-000007", "csoto@estela.example")
    assert signer.reply_address_verifies(address.upper(), "TK-000007", "csoto@estela.example")
    assert not signer.reply_address_verifies(address, "TK-000008", "csoto@estela.example")
    assert not signer.reply_address_verifies(address, "TK-000007", "otro@estela.example")
    assert not Signer(b"other").reply_address_verifies(address, "TK-000007", "csoto@estela.example")
    rating = signer.rating_address("soporte@estela.example", "TK-000007", 2, helpful=False)
    found = signer.rating_in(rating)
    assert found is not None and (found.number, found.resolution, found.helpful) == ("TK-000007", 2, False)
    assert signer.rating_in(rating.replace(".no.", ".yes.")) is None


def test_return_addresses_verify_only_untouched() -> None:
    signer = Signer(b"secret")
    address = signer.bounce_address("soporte.latam@estela.example", "0123456789abcdef")
    assert address.startswith("soporte.latam+b.0123456789abcdef.") and address.endswith("@estela.example")
    assert signer.bounce_token_in(address) == "0123456789abcdef"
    assert signer.bounce_token_in(address.upper()) == "0123456789abcdef"  # MTAs change case
    assert signer.bounce_token_in(address.replace("+b.0123", "+b.1123")) is None
    assert Signer(b"other").bounce_token_in(address) is None
    assert signer.bounce_token_in("soporte.latam@estela.example") is None
    assert message_token("0123456789abcdef.tk-000001@estela.example") == "0123456789abcdef"


@pytest.mark.parametrize(
    ("address", "signed_form"),
    [("s+rate.TK-1.2.yes.0000000000000000@x.example", True), ("s+TK-000001.abc@x.example", True),
     ("s+tk-1@x.example", True), ("s+b.12.0123456789abcdef@x.example", True), ("s+x.0123456789ABCDEF@x.example", True),
     ("s+peru@x.example", False), ("s+urgente.ya@x.example", False), ("s@x.example", False)],
)  # fmt: skip
def test_which_tags_have_a_signed_form(address: str, signed_form: bool) -> None:
    assert looks_signed(address) is signed_form


def test_a_plus_tag_verifies_only_when_we_signed_it_for_that_reader() -> None:
    signer = Signer(b"secret")
    reply = signer.reply_address("soporte@estela.example", "TK-000007", "agentes@estela.example")
    rating = signer.rating_address("soporte@estela.example", "TK-000007", 2, helpful=True)
    assert signer.verifies(reply, ["x@cliente.example", "agentes@estela.example"]) and signer.verifies(rating, [])
    assert not signer.verifies(reply, ["x@cliente.example"])
    for forged in ("soporte+rate.TK-000007.2.yes.0000000000000000@estela.example",
                   "soporte+TK-000007.0000000000000000@estela.example", "soporte+hola@estela.example"):  # fmt: skip
        assert not signer.verifies(forged, ["agentes@estela.example"])


@pytest.mark.parametrize(
    ("subject", "asks"),
    [("Mis tickets", True), ("RE: mis TICKETS", True), ("#mis-tickets", True), ("my tickets", True),
     ("Meus tickets", True), ("Mis tickets no funcionan", False), ("[#TK-000001] Mis tickets", False)],
)  # fmt: skip
def test_my_tickets_subjects(subject: str, asks: bool) -> None:
    assert asks_for_my_tickets(subject) is asks


def test_follow_up_subject_drops_prefixes_and_the_old_token() -> None:
    assert follow_up_subject("RE: RV: [#TK-000001] Factura rechazada", "TK") == "Factura rechazada"
