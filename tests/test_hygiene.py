"""Mail hygiene end to end: auto-replies, bounces, loops, lists, runaway and unverified
senders, spoofed agents, limits, quoted text and hostile HTML, over real SMTP."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.parsing.mail import parse_mail
from gateway.parsing.quotes import new_part
from gateway.rules.classify import Context, classify
from tests.conftest import MAILBOX, SHARED_MAIL, Sink, crlf, make_mail, sample, send, spool_rows
from tests.support.desk import REQUESTER, agent_answers, dkim_signed, last_to, open_first_ticket, text_of

LOCAL_MAIL = Path(__file__).parent / "mail"
CONTEXT = Context(frozenset({MAILBOX}), "ticket-gateway", "agentes@estela.example")


def local(name: str) -> bytes:
    return crlf((LOCAL_MAIL / name).read_bytes())


@pytest.mark.parametrize(
    ("source", "name", "envelope", "kind"),
    [
        (SHARED_MAIL, "05-auto-reply-exchange-oof.eml", "jnunez@distribuidora-andes.example", "auto_reply"),
        (SHARED_MAIL, "06-auto-reply-subject-only.eml", "ventas@ferreteria-norte.example", "auto_reply"),
        (SHARED_MAIL, "07-bounce-postfix-dsn.eml", "", "bounce"),
        (SHARED_MAIL, "12-bulk-newsletter.eml", "noticias@newsletter.example", "bulk"),
        (SHARED_MAIL, "13-loop-from-own-address.eml", MAILBOX, "loop"),
        (SHARED_MAIL, "10-forged-agent-commands.eml", "csoto@estela.example", "normal"),
        (LOCAL_MAIL, "exchange-oof-en.eml", "pbrown@importadora-sur.example", "auto_reply"),
        (LOCAL_MAIL, "gmail-vacation-es.eml", "lrojas@gmail.example", "auto_reply"),
        (LOCAL_MAIL, "spanish-ausente-no-headers.eml", "contabilidad@ferreteria-norte.example", "auto_reply"),
        (LOCAL_MAIL, "portuguese-resposta-automatica.eml", "financeiro@comercial-rio.example", "auto_reply"),
        (LOCAL_MAIL, "exchange-ndr.eml", "", "bounce"),
        (LOCAL_MAIL, "mailing-list-post.eml", "foro-bounces@listas.contadores.example", "bulk"),
        (LOCAL_MAIL, "thunderbird-reply-en.eml", "pbrown@importadora-sur.example", "normal"),
    ],
)
def test_classification_of_real_world_shapes(source: Path, name: str, envelope: str, kind: str) -> None:
    mail = parse_mail((source / name).read_bytes())
    assert classify(mail, envelope, CONTEXT).kind == kind


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("outlook-web-html-reply-es.eml", "Ya probamos y sigue igual.\nSaludos, Andrés"),  # two <div>s: two lines
        ("apple-mail-reply-pt.eml", "Funcionou, obrigado!\n\nEnviado do meu iPhone"),
        ("thunderbird-reply-en.eml", "Still failing on the Santiago branch.\n\nPeter"),
    ],
)
def test_new_part_of_client_replies(name: str, expected: str) -> None:
    mail = parse_mail(local(name))
    assert new_part(mail.text, mail.html, mail.has_text_part) == expected


@pytest.mark.parametrize(
    "raw_of",
    [
        lambda: sample("05-auto-reply-exchange-oof.eml"),
        lambda: local("exchange-oof-en.eml"),
        lambda: local("gmail-vacation-es.eml"),
        lambda: local("spanish-ausente-no-headers.eml"),
    ],
)
async def test_automatic_mail_into_a_ticket_is_a_system_entry_and_nothing_else(
    gateway: Gateway, relay: Sink, raw_of
) -> None:
    await open_first_ticket(gateway, relay)
    sent_before = len(relay.received)
    await send(gateway, raw_of())
    await gateway.drain()
    assert len(relay.received) == sent_before  # no notification to anybody
    [ticket] = await gateway.pipeline.queries.list_tickets()
    assert ticket["status"] == "open"
    shown = await gateway.pipeline.queries.show_ticket("TK-000001")
    assert shown["messages"][-1]["visibility"] == "system"


@pytest.mark.parametrize(
    "raw_of",
    [
        lambda: sample("06-auto-reply-subject-only.eml"),
        lambda: sample("12-bulk-newsletter.eml"),
        lambda: sample("13-loop-from-own-address.eml"),
        lambda: local("mailing-list-post.eml"),
        lambda: local("portuguese-resposta-automatica.eml"),
    ],
)
async def test_automatic_mail_for_no_ticket_is_kept_raw_only(gateway: Gateway, relay: Sink, raw_of) -> None:
    raw = raw_of()
    await send(gateway, raw)
    await gateway.drain()
    assert await gateway.pipeline.queries.list_tickets() == []
    assert relay.received == []
    [row] = spool_rows(gateway.settings.database.path)
    assert row["status"] == "ignored" and row["outcome"].startswith("ignored: ") and row["raw"] == raw


async def test_our_own_loop_header_coming_back_is_ignored(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    echoed = relay.received[0].raw.replace(b"From: Soporte LATAM", b"From: Eco <eco@otro.example>\r\nX-Old-From:")
    await send(gateway, echoed, sender="eco@otro.example")
    await gateway.drain()
    assert spool_rows(gateway.settings.database.path)[-1]["outcome"].startswith("ignored: loop (rule own_loop_header")


@pytest.mark.parametrize(("name", "envelope"), [("07-bounce-postfix-dsn.eml", ""), ("exchange-ndr.eml", "")])
async def test_bounce_marks_the_participant_and_stops_mailing_it(
    gateway: Gateway, relay: Sink, name: str, envelope: str
) -> None:
    dead = "jnunez-old@distribuidora-andes.example" if name.startswith("07") else "ana.vieja@importadora-sur.example"
    first = sample("01-new-utf8-cc.eml").replace(b"jnunez@distribuidora-andes.example", dead.encode())
    await send(gateway, first)
    await gateway.drain()
    acknowledgement = last_to(relay, REQUESTER)
    ack_id = str(acknowledgement.message["Message-ID"]).strip("<>")
    bounce = sample(name) if name.startswith("07") else local(name)
    bounce = bounce.replace(b"ticket-TK-000001-ack@estela.example", ack_id.encode()).replace(
        b"{ACK_ID}", ack_id.encode()
    )
    sent_before = len(relay.received)
    await send(gateway, bounce, [acknowledgement.mail_from], sender=envelope)  # back to its return address
    await gateway.drain()
    assert len(relay.received) == sent_before  # a bounce is never answered
    assert len(await gateway.pipeline.queries.list_tickets()) == 1
    participants = await gateway.pipeline.database.fetch_all("SELECT address, status, diagnostic FROM participants")
    bounced = {row["address"]: row for row in participants if row["status"] == "bounced"}
    assert list(bounced) == [dead] and "5.1.1" in bounced[dead]["diagnostic"]

    await send(gateway, make_mail("Re: [#TK-000001] más datos", sender=f"María <{REQUESTER}>"))
    await gateway.drain()
    after_bounce = relay.received[sent_before:]
    assert after_bounce and all(dead not in mail.rcpt_tos for mail in after_bounce)


async def test_runaway_sender_gets_tickets_but_acknowledgements_stop(gateway: Gateway, relay: Sink) -> None:
    limit = gateway.settings.limits.new_tickets_per_sender_per_hour
    for index in range(limit + 3):
        await send(gateway, make_mail(f"Alerta ERP {index}", sender="erp@cliente.example"))
    await gateway.drain()
    assert len(await gateway.pipeline.queries.list_tickets()) == limit + 3  # nothing lost
    assert len(relay.handler.to("erp@cliente.example")) == limit
    warnings = [
        mail for mail in relay.handler.to("agentes@estela.example") if "erp@cliente.example" in mail.message["Subject"]
    ]
    assert len(warnings) == 1  # agents are told once


async def test_reply_from_a_stranger_is_flagged_for_agents_only(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    sent_before = len(relay.received)
    await send(gateway, make_mail("Re: [#TK-000001] Error", body="#cerrar\nSoy otra persona.", sender="x@otra.example"))
    await gateway.drain()
    new = relay.received[sent_before:]
    assert [mail.rcpt_tos for mail in new] == [["agentes@estela.example"]]
    assert "no es participante" in text_of(new[0])
    shown = await gateway.pipeline.queries.show_ticket("TK-000001")
    assert shown["status"] == "open" and "x@otra.example" not in shown["cc"]
    assert shown["messages"][-1]["visibility"] == "internal" and "unverified_sender" in shown["messages"][-1]["note"]


@pytest.mark.parametrize("security", [{"verify_dkim": True}])
async def test_agent_commands_honoured_from_a_dkim_signed_mail(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    raw = make_mail(
        "Re: [#TK-000001] Error", body="#prioridad baja\n\nListo.", sender="Carla Soto <csoto@estela.example>"
    )
    signed, dns = dkim_signed(raw)
    gateway.pipeline.dkim_dns = dns
    await send(gateway, signed)
    await gateway.drain()
    assert (await gateway.pipeline.queries.show_ticket("TK-000001"))["priority"] == "low"

    tampered, _ = dkim_signed(raw.replace(b"prioridad baja", b"prioridad alta"))
    tampered = tampered.replace(b"prioridad alta", b"prioridad media")  # changed after signing
    await send(gateway, tampered.replace(b"Message-ID: <", b"Message-ID: <x"))
    await gateway.drain()
    assert (await gateway.pipeline.queries.show_ticket("TK-000001"))["priority"] == "low"


@pytest.mark.parametrize("security", [{"trusted_relays": ["127.0.0.1"]}])  # the test client is our relay
@pytest.mark.parametrize(("authserv", "honoured"), [("mx.test.example", True), ("mx.attacker.example", False)])
async def test_authentication_results_only_from_our_own_host(
    gateway: Gateway, relay: Sink, authserv: str, honoured: bool
) -> None:
    await open_first_ticket(gateway, relay)
    results = f"{authserv}; dkim=pass header.d=estela.example; spf=pass smtp.mailfrom=estela.example"
    raw = make_mail(
        "Re: [#TK-000001] Error", body="#prioridad baja", sender="csoto@estela.example",
        extra_headers={"Authentication-Results": results},
    )  # fmt: skip
    await send(gateway, raw)
    await gateway.drain()
    expected = "low" if honoured else "urgent"
    assert (await gateway.pipeline.queries.show_ticket("TK-000001"))["priority"] == expected


async def test_oversized_header_is_refused_at_data(gateway: Gateway) -> None:
    huge = make_mail("x", extra_headers={f"X-Filler-{i}": "y" * 900 for i in range(400)})
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await send(gateway, huge)
    assert refused.value.smtp_code == 552 and b"5.3.4" in refused.value.smtp_error
    assert spool_rows(gateway.settings.database.path) == []


def nested(depth: int, subject: str = "muñeca rusa") -> bytes:
    """A mail of multiparts `depth` deep."""
    inner = EmailMessage()
    inner.set_content("fondo")
    for _ in range(depth):
        outer = EmailMessage()
        outer.make_mixed()
        outer.attach(inner)
        inner = outer
    inner["From"], inner["To"], inner["Subject"] = "c@empresa.example", MAILBOX, subject
    return crlf(inner.as_bytes())


async def test_too_deep_nesting_is_kept_raw_with_the_reason(gateway: Gateway) -> None:
    raw = nested(gateway.settings.limits.max_depth + 2)
    await send(gateway, raw)
    await gateway.drain()
    [row] = spool_rows(gateway.settings.database.path)
    assert row["status"] == "failed" and "limits.max_depth" in row["error"] and row["raw"] == raw


async def test_customer_html_is_stored_sanitised(gateway: Gateway) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "c@empresa.example", MAILBOX, "html"
    message.set_content(
        '<p onclick="steal()">Hola<script>alert(1)</script><img src=x onerror=alert(2)></p>', subtype="html"
    )
    await send(gateway, crlf(message.as_bytes()))
    await gateway.drain()
    row = await gateway.pipeline.database.fetch_one("SELECT html, body FROM messages")
    assert (
        row is not None
        and "<script" not in row["html"]
        and "onerror" not in row["html"]
        and "onclick" not in row["html"]
    )
    assert row["body"] == "Hola"


async def test_forged_agent_is_logged(gateway: Gateway, relay: Sink, caplog: pytest.LogCaptureFixture) -> None:
    await open_first_ticket(gateway, relay)
    await send(gateway, sample("10-forged-agent-commands.eml"))
    await gateway.drain()
    assert any("not authenticated" in record.getMessage() for record in caplog.records)


async def test_agent_hitting_reply_is_authenticated_without_dkim(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    await agent_answers(gateway, last_to(relay, "agentes@estela.example"), "#prioridad baja")
    assert (await gateway.pipeline.queries.show_ticket("TK-000001"))["priority"] == "low"


async def test_many_failing_mails_log_a_line_each_and_one_traceback(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of bad mail (issue 24: 50,010 tracebacks, 70 MB of log in three minutes): each
    mail still gets its one line with the reason; the traceback is written once a minute."""
    with caplog.at_level(logging.INFO):
        for index in range(20):
            await send(gateway, nested(gateway.settings.limits.max_depth + 2, f"muñeca rusa {index}"))
        await gateway.drain()
    failed = [record for record in caplog.records if "failed: 22 levels of nested multiparts" in record.getMessage()]
    assert len(failed) == 20 and all(record.exc_info is None for record in failed)
    assert len([record for record in caplog.records if record.exc_info]) <= 1  # none if one was written this minute
