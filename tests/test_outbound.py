"""Outbound over real SMTP: notifications arrive at a recording relay, parse back right,
survive a relay outage, and never carry an injected header or a merged address."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.utils import getaddresses
from pathlib import Path

from gateway.clock import FixedClock
from gateway.daemon import Gateway
from gateway.settings import load_settings
from tests.conftest import (
    MAILBOX,
    ReceivedMail,
    Sink,
    free_port,
    make_mail,
    run_cli,
    sample,
    send,
    spool_rows,
    write_config,
)

REQUESTER = "mjperez@distribuidora-andes.example"
CC = "jnunez@distribuidora-andes.example"
AGENTS = "agentes@estela.example"


def only(mails: list[ReceivedMail]) -> ReceivedMail:
    assert len(mails) == 1, [m.rcpt_tos for m in mails]
    return mails[0]


async def test_new_ticket_acknowledges_requester_with_cc_and_tells_agents(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, sample("01-new-utf8-cc.eml"))
    await gateway.drain()

    ack = only(relay.handler.to(REQUESTER))
    assert sorted(ack.rcpt_tos) == [CC, REQUESTER]
    assert ack.mail_from.startswith("soporte.latam+b.") and ack.mail_from.endswith("@estela.example")  # VERP
    message = ack.message
    assert message["Subject"] == "[#TK-000001] Error al emitir factura electrónica: rechazo del SII"
    assert message["In-Reply-To"] == "<CAF01.001@mail.distribuidora-andes.example>"
    assert message["References"] == "<CAF01.001@mail.distribuidora-andes.example>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Reply-To"] == MAILBOX
    assert "ticket-gateway" in message["X-Loop"]
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Soporte LATAM", MAILBOX)
    assert [a.addr_spec for a in message["To"].addresses] == [REQUESTER]
    assert [(a.display_name, a.addr_spec) for a in message["Cc"].addresses] == [("Jorge Núñez", CC)]
    assert message["Message-ID"].endswith("@estela.example>")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hola María José Pérez" in text and "TK-000001" in text and "Incidente" in text and "Urgente" in text
    assert "Hola María José Pérez" in html and "<p>" in html
    assert "Desde esta mañana no podemos emitir facturas" in text  # the latest message, shown below

    notice = only(relay.handler.to(AGENTS))
    assert notice.message["Auto-Submitted"] == "auto-generated"
    assert notice.message["Subject"].startswith("[#TK-000001]")
    assert REQUESTER not in notice.rcpt_tos
    assert len(relay.received) == 2


async def test_reply_to_the_acknowledgement_threads_without_the_token(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    await gateway.drain()
    ack_id = only(relay.handler.to("amunoz@logistica-sur.example")).message["Message-ID"]

    reply = sample("04-reply-outlook-es-in-reply-to-only.eml")
    reply = reply.replace(b"<ticket-TK-000002-ack@estela.example>", ack_id.encode())
    reply = reply.replace(b"<DM6PR01MB0001.namprd01.prod.outlook.example> ", b"")  # In-Reply-To alone
    await send(gateway, reply)
    await gateway.drain()

    [ticket] = await gateway.pipeline.queries.list_tickets()
    assert ticket["message_count"] == 2


async def test_customer_reply_reaches_agents_and_cc_never_its_author(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, sample("01-new-utf8-cc.eml"))
    await gateway.drain()
    relay.received.clear()

    # Without its Cc line: a colleague the reply went to directly gets no copy from us (test_customer_mail).
    reply = sample("03-reply-gmail-es-token.eml").replace(b"Cc: jnunez@distribuidora-andes.example\r\n", b"")
    await send(gateway, reply)
    await gateway.drain()
    assert relay.handler.to(REQUESTER) == []  # the author is never sent their own message
    agents = only(relay.handler.to(AGENTS))
    assert "Gracias, ya pudimos emitir las facturas pendientes." in agents.message.get_body(("plain",)).get_content()
    cc = only(relay.handler.to(CC))
    assert cc.message["In-Reply-To"] == "<CAF01.003@mail.distribuidora-andes.example>"
    assert cc.message["References"].split() == [
        "<CAF01.001@mail.distribuidora-andes.example>",
        "<CAF01.003@mail.distribuidora-andes.example>",
    ]


async def test_three_accented_cc_names_each_receive_and_parse_back(gateway: Gateway, relay: Sink) -> None:
    people = [
        ("Núñez, Jorge", "jnunez@andes.example"),
        ("Pérez Ñuño, María José", "mjp@andes.example"),
        ("Ávila, Óscar", "oavila@andes.example"),
    ]
    cc = ", ".join(str(HeaderAddress(display_name=name, addr_spec=address)) for name, address in people)
    await send(gateway, make_mail("Tres en copia", sender="cliente@andes.example", cc=cc))
    await gateway.drain()

    ack = only(relay.handler.to("cliente@andes.example"))
    assert sorted(ack.rcpt_tos) == sorted(["cliente@andes.example", *(address for _, address in people)])
    assert [(a.display_name, a.addr_spec) for a in ack.message["Cc"].addresses] == people
    raw_cc = ack.message.get_all("Cc")
    assert len(getaddresses([str(value) for value in raw_cc])) == 3


async def test_injected_header_in_subject_adds_no_header_and_no_recipient(gateway: Gateway, relay: Sink) -> None:
    raw = (
        b"From: Cliente <cliente@empresa.example>\r\nTo: soporte.latam@estela.example\r\n"
        b"Subject: =?utf-8?q?Hola=0D=0ABcc=3A_victim=40example=2Ecom?=\r\n"
        b"Message-ID: <inject@empresa.example>\r\n\r\nHola\r\n"
    )
    await send(gateway, raw)
    await gateway.drain()
    assert len(relay.received) == 2
    for mail in relay.received:
        assert "victim@example.com" not in mail.rcpt_tos
        assert mail.message["Bcc"] is None
        assert b"\r\nBcc:" not in mail.raw and b"\nBcc:" not in mail.raw


async def test_relay_down_loses_nothing_and_delivers_exactly_once_when_back(tmp_path: Path) -> None:
    relay_port = free_port()  # nobody listens there yet: the relay is down
    clock = FixedClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    gateway = Gateway(load_settings(write_config(tmp_path, relay_port=relay_port)), clock)
    await gateway.start()
    sink = Sink(relay_port)
    try:
        await send(gateway, sample("01-new-utf8-cc.eml"))
        await gateway.drain()
        queued = await gateway.pipeline.outbox.summaries("queued")
        assert len(queued) == 2 and "connection failed" in (queued[0].relay_reply or "")

        await sink.start()  # the relay comes back
        await gateway.drain()
        assert sink.received == []  # not due yet: the backoff is respected

        clock.advance(seconds=61)
        await gateway.drain()
        await gateway.drain()
        assert len(sink.received) == 2
        assert {status.status for status in await gateway.pipeline.outbox.summaries()} == {"sent"}
    finally:
        await gateway.stop()
        await sink.stop()


async def test_restart_resumes_pending_mail(tmp_path: Path) -> None:
    relay_port = free_port()
    settings = load_settings(write_config(tmp_path, relay_port=relay_port))
    clock = FixedClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    first = Gateway(settings, clock)
    await first.start()
    await send(first, make_mail("antes del corte"))
    await first.drain()  # processed and queued; the relay is down, nothing sent
    await first.stop()

    sink = await Sink(relay_port).start()
    second = Gateway(settings, clock)
    await second.start()
    try:
        clock.advance(seconds=61)  # the retry falls due
        await second.drain()
    finally:
        await second.stop()
        await sink.stop()
    assert len(sink.received) == 2


async def test_permanent_refusal_is_failed_with_the_relays_words(
    gateway: Gateway, relay: Sink, config_path: Path
) -> None:
    relay.handler.rcpt_replies = ["550 5.1.1 <cliente@empresa.example>: Recipient address rejected"]
    await send(gateway, make_mail("hola"))
    await gateway.drain()
    failed = await gateway.pipeline.outbox.summaries("failed")
    assert len(failed) == 1 and "550 5.1.1" in (failed[0].relay_reply or "")
    assert len(relay.received) == 1  # the agents' notice still went out

    listing = run_cli(config_path, "outbox", "list", "--status", "failed").stdout.decode()
    assert "failed" in listing and "Recipient address rejected" in listing
    assert run_cli(config_path, "outbox", "retry", str(failed[0].id)).returncode == 0
    await gateway.drain()
    assert len(relay.received) == 2  # retried after the admin fixed the cause


async def test_temporary_refusal_is_retried(tmp_path: Path, relay: Sink) -> None:
    clock = FixedClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    gateway = Gateway(load_settings(write_config(tmp_path, relay_port=relay.port)), clock)
    await gateway.start()
    try:
        relay.handler.rcpt_replies = ["451 4.7.1 Greylisted, try again later"]
        await send(gateway, make_mail("hola"))
        await gateway.drain()
        assert len(relay.received) == 1
        [queued] = await gateway.pipeline.outbox.summaries("queued")
        assert queued.attempts == 1 and "451 4.7.1" in (queued.relay_reply or "")
        clock.advance(minutes=2)
        await gateway.drain()
        assert len(relay.received) == 2
    finally:
        await gateway.stop()


async def test_template_override_replaces_only_the_files_present(tmp_path: Path, relay: Sink) -> None:
    overrides = tmp_path / "overrides" / "es"
    overrides.mkdir(parents=True)
    (overrides / "acknowledgement.subject.txt").write_text("Recibido: {{ ticket.subject }}")
    config = write_config(tmp_path, relay_port=relay.port)
    config.write_text(config.read_text().replace("[outbound]\n", f'[outbound]\ntemplates_dir = "{overrides.parent}"\n'))
    gateway = Gateway(load_settings(config))
    await gateway.start()
    try:
        await send(gateway, make_mail("Factura duplicada"))
        await gateway.drain()
    finally:
        await gateway.stop()
    ack = only(relay.handler.to("cliente@empresa.example"))
    assert ack.message["Subject"] == "[#TK-000001] Recibido: Factura duplicada"  # the token is kept
    assert "Recibimos su solicitud" in ack.message.get_body(("plain",)).get_content()  # shipped body


async def test_mailbox_language_chooses_the_templates(tmp_path: Path, relay: Sink) -> None:
    config = write_config(tmp_path, relay_port=relay.port)
    config.write_text(config.read_text().replace('language = "es"', 'language = "pt"'))
    gateway = Gateway(load_settings(config))
    await gateway.start()
    try:
        await send(gateway, make_mail("Não consigo entrar"))
        await gateway.drain()
    finally:
        await gateway.stop()
    text = only(relay.handler.to("cliente@empresa.example")).message.get_body(("plain",)).get_content()
    assert "Recebemos sua solicitação" in text and "Solicitação" in text


async def test_outbox_show_prints_the_rendered_mail(gateway: Gateway, config_path: Path) -> None:
    await send(gateway, make_mail("Ver correo"))
    await gateway.pipeline.drain()
    shown = run_cli(config_path, "outbox", "show", "1")
    assert shown.returncode == 0
    assert b"Subject: [#TK-000001] Ver correo" in shown.stdout and b"Auto-Submitted: auto-replied" in shown.stdout
    assert spool_rows(gateway.settings.database.path)[0]["status"] == "done"


async def test_temporary_failures_give_up_after_max_attempts(tmp_path: Path, relay: Sink) -> None:
    clock = FixedClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    config = write_config(tmp_path, relay_port=relay.port)
    config.write_text(config.read_text().replace("[outbound]\n", "[outbound]\nmax_attempts = 2\n"))
    gateway = Gateway(load_settings(config), clock)
    await gateway.start()
    try:
        relay.handler.rcpt_replies = ["451 4.7.1 Greylisted"] * 4  # acknowledgement and agents' notice, twice
        await send(gateway, make_mail("hola"))
        await gateway.drain()
        clock.advance(minutes=2)
        await gateway.drain()
        failed = await gateway.pipeline.outbox.summaries("failed")
        assert [entry.attempts for entry in failed] == [2, 2]
        assert all("gave up after 2 attempts" in (entry.relay_reply or "") for entry in failed)
        assert relay.received == []
    finally:
        await gateway.stop()
