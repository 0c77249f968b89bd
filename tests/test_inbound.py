"""End to end over SMTP: mail in, tickets and threaded replies out of the database."""

from __future__ import annotations

import os
import smtplib
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.parsing.workers import SPILL_BYTES
from gateway.settings import load_settings
from tests.conftest import MAILBOX, SECOND_MAILBOX, crlf, make_mail, sample, send, spool_rows, write_config
from tests.support.desk import all_tickets, ticket


async def test_new_mail_becomes_a_ticket_with_cc_and_mailbox_fields(gateway: Gateway) -> None:
    reply = await send(gateway, sample("01-new-utf8-cc.eml"))
    assert reply == {}  # every recipient accepted
    await gateway.drain()

    tk = await ticket(gateway, "TK-000001")
    assert tk["subject"] == "Error al emitir factura electrónica: rechazo del SII"
    assert tk["requester"] == "mjperez@distribuidora-andes.example"
    assert tk["requester_name"] == "María José Pérez"
    assert tk["cc"] == ["jnunez@distribuidora-andes.example"]
    assert (tk["status"], tk["priority"], tk["type"]) == ("open", "urgent", "incident")  # from its lines
    assert (tk["mailbox"], tk["country"], tk["brand"], tk["product"]) == (MAILBOX, "CL", "Estela", "Estela ERP")
    assert tk["source"] == "email"
    [message] = tk["messages"]
    assert message["direction"] == "inbound"
    assert message["message_id"] == "CAF01.001@mail.distribuidora-andes.example"
    assert "RUT: 76.086.428-5" in message["body"]


async def test_mailbox_decides_defaults_and_plus_addressing_routes(gateway: Gateway) -> None:
    await send(gateway, make_mail("Consulta de precios", to=SECOND_MAILBOX), ["Ventas+peru@Estela.example"])
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert (tk["mailbox"], tk["country"], tk["product"]) == (SECOND_MAILBOX, "PE", "Estela POS")
    assert (tk["type"], tk["priority"]) == ("question", "low")


async def test_importance_high_raises_priority(gateway: Gateway) -> None:
    await send(gateway, sample("09-new-english-base64-importance-high.eml"))
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["priority"] == "high"


async def test_html_only_mail_keeps_text_html_and_attachment(gateway: Gateway) -> None:
    await send(gateway, sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    await gateway.drain()
    tk = await ticket(gateway, "TK-000001")
    assert tk["subject"] == "Reporte de inventario no genera (sucursal Peñalolén)"
    [message] = tk["messages"]
    assert "Peñalolén" in message["body"] and "cierre de mes" in message["body"]
    assert "<p" not in message["body"]
    [attachment] = message["attachments"]
    assert attachment["filename"] == "captura inventario Peñalolén.png"
    assert attachment["content_type"] == "image/png"
    assert attachment["size"] == 1032
    content = await gateway.pipeline.store.blob(attachment["sha256"])
    assert content is not None and content.startswith(b"\x89PNG")


async def test_same_attachment_twice_is_stored_once(gateway: Gateway) -> None:
    await send(gateway, sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    resent = sample("02-new-outlook-html-only-cp1252-attachment.eml").replace(
        b"DM6PR01MB0001.namprd01", b"DM6PR01MB0099.namprd01"
    )
    await send(gateway, resent)
    await gateway.drain()
    assert len(await all_tickets(gateway)) == 2
    blobs = await gateway.pipeline.database.fetch_all("SELECT sha256 FROM blobs")
    attachments = await gateway.pipeline.database.fetch_all("SELECT sha256 FROM attachments")
    assert len(attachments) == 2 and len(blobs) == 1


def mail_with_attachment(content: bytes) -> bytes:
    message = message_from_bytes(make_mail("Respaldo adjunto"), policy=policy.default)
    message.add_attachment(content, maintype="application", subtype="octet-stream", filename="respaldo.bin")
    return crlf(message.as_bytes())


async def test_attachment_larger_than_a_write_piece_is_stored_byte_for_byte(gateway: Gateway) -> None:
    content = bytes(range(256)) * 2500 + b"fin"  # 640,003 bytes: several pieces, the last one short
    await send(gateway, mail_with_attachment(content))
    await gateway.drain()
    [attachment] = (await ticket(gateway, "TK-000001"))["messages"][0]["attachments"]
    assert attachment["size"] == len(content)
    assert await gateway.pipeline.store.blob(attachment["sha256"]) == content


async def test_large_attachment_comes_from_the_worker_as_a_file_and_leaves_none_behind(tmp_path: Path) -> None:
    stale = tmp_path / "gateway.db.attachments" / "999999999"  # left by a processor killed long ago
    stale.mkdir(parents=True)
    (stale / "old.part").write_bytes(b"x")
    content = os.urandom(SPILL_BYTES + 12345)
    gateway = Gateway(load_settings(write_config(tmp_path, max_size=4_000_000)))
    await gateway.start()
    try:
        assert gateway.pipeline.parser.workers  # the path under test: parsed in a worker process
        await send(gateway, mail_with_attachment(content))
        await gateway.drain()
        [attachment] = (await ticket(gateway, "TK-000001"))["messages"][0]["attachments"]
        assert await gateway.pipeline.store.blob(attachment["sha256"]) == content
        assert not stale.exists()
        assert list(gateway.pipeline.parser.spill_directory.iterdir()) == []
    finally:
        await gateway.stop()
    assert not gateway.pipeline.parser.spill_directory.exists()


async def test_reply_threads_by_subject_token(gateway: Gateway) -> None:
    await send(gateway, sample("01-new-utf8-cc.eml"))
    await send(gateway, sample("03-reply-gmail-es-token.eml"))
    await gateway.drain()
    assert len(await all_tickets(gateway)) == 1
    tk = await ticket(gateway, "TK-000001")
    assert [m["message_id"] for m in tk["messages"]] == [
        "CAF01.001@mail.distribuidora-andes.example",
        "CAF01.003@mail.distribuidora-andes.example",
    ]
    assert tk["messages"][1]["body"].startswith("Gracias, ya pudimos emitir las facturas pendientes.")


@pytest.mark.parametrize(
    "subject",
    ["RE: RE: [#TK-000001] algo", "RV: tk-000001 seguimos", "Fwd: #TK-1 reenvío", "Re:[TK-000001]", "Sobre TK-000001"],
)
async def test_token_is_found_behind_any_prefix_and_form(gateway: Gateway, subject: str) -> None:
    await send(gateway, make_mail("Primera consulta"))
    await send(gateway, make_mail(subject, sender="otra@empresa.example"))
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["message_count"] == 2


async def test_token_of_unknown_ticket_opens_a_new_ticket(gateway: Gateway) -> None:
    await send(gateway, make_mail("Re: [#TK-000777] viejo caso"))
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["number"] == "TK-000001"


async def test_reply_threads_by_in_reply_to_only_and_adds_new_cc(gateway: Gateway) -> None:
    await send(gateway, make_mail("Impresora no funciona", message_id="<first@empresa.example>"))
    reply = make_mail(
        "otra cosa sin token",
        cc="Nueva Persona <nueva@empresa.example>",
        extra_headers={"In-Reply-To": "<first@empresa.example>"},
    )
    await send(gateway, reply)
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["message_count"] == 2
    assert tk["cc"] == ["nueva@empresa.example"]


async def test_reply_threads_by_references(gateway: Gateway) -> None:
    await send(gateway, sample("02-new-outlook-html-only-cp1252-attachment.eml"))
    await send(gateway, sample("04-reply-outlook-es-in-reply-to-only.eml"))
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["message_count"] == 2


async def test_unknown_recipient_is_refused_at_rcpt(gateway: Gateway) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send(gateway, make_mail("hola"), ["otro@estela.example"])
    code, text = refused.value.recipients["otro@estela.example"]
    assert code == 550 and text.startswith(b"5.1.1")
    assert spool_rows(gateway.settings.database.path) == []


async def test_open_relay_is_refused_but_our_recipient_still_gets_it(gateway: Gateway) -> None:
    refused = await send(gateway, make_mail("hola"), [MAILBOX, "victim@elsewhere.example"])
    assert refused["victim@elsewhere.example"][0] == 550
    await gateway.drain()
    assert len(await all_tickets(gateway)) == 1


async def test_oversize_mail_is_refused_with_552(gateway: Gateway) -> None:
    huge = make_mail("adjunto grande", body="x" * 70 + "\n" * 0 + ("linea larga\n" * 100_000))
    with pytest.raises(smtplib.SMTPException) as refused:
        await send(gateway, huge)
    assert "552" in str(refused.value)
    assert spool_rows(gateway.settings.database.path) == []


async def test_same_message_id_twice_is_stored_once(gateway: Gateway) -> None:
    mail = sample("01-new-utf8-cc.eml")
    await send(gateway, mail)
    await send(gateway, mail)  # an MTA retry after a lost 250
    await send(gateway, mail, [MAILBOX, SECOND_MAILBOX])  # one mail to two of our mailboxes
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["message_count"] == 1
    rows = spool_rows(gateway.settings.database.path)
    assert [row["status"] for row in rows] == ["done", "done", "done"]  # all kept raw
    assert rows[1]["outcome"].startswith("duplicate")


async def test_250_means_the_raw_bytes_are_in_the_spool(gateway: Gateway) -> None:
    mail = sample("14-broken-mime.eml")
    await send(gateway, mail)
    [row] = spool_rows(gateway.settings.database.path)  # before any processing
    assert row["raw"] == mail


async def test_broken_mime_becomes_a_ticket_with_best_effort_text(gateway: Gateway) -> None:
    await send(gateway, sample("14-broken-mime.eml"))
    await gateway.drain()
    tk = await ticket(gateway, "TK-000001")
    assert tk["subject"] == "Error en el módulo"
    assert "El módulo de nómina no abre." in tk["messages"][0]["body"]


async def test_forwarded_message_is_an_rfc822_attachment(gateway: Gateway) -> None:
    await send(gateway, sample("15-forward-rfc822.eml"))
    await gateway.drain()
    tk = await ticket(gateway, "TK-000001")
    assert tk["requester"] == "partner@reseller-peru.example"
    [message] = tk["messages"]
    [attachment] = message["attachments"]
    assert attachment["content_type"] == "message/rfc822"
    assert attachment["filename"] == "No imprime la boleta.eml"
    content = await gateway.pipeline.store.blob(attachment["sha256"])
    assert content is not None and b"La impresora t" in content
    assert "impresora" not in message["body"]  # the forwarded text is the attachment's, not the body's


async def test_mail_the_parser_cannot_handle_is_kept_failed_then_retried(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.parsing.workers as parse_module  # where the pipeline calls the parser

    real_parse = parse_module.parse_mail

    def parser_with_a_bug(raw: bytes):  # the bug: this sender's mail crashes the parser
        if b"legacy-erp" in raw:
            raise ValueError("parser bug on legacy ERP mail")
        return real_parse(raw)

    monkeypatch.setenv("GATEWAY_PIPELINE__PARSE_WORKERS", "0")  # the bug must be in this process
    monkeypatch.setattr(parse_module, "parse_mail", parser_with_a_bug)
    gateway = Gateway(load_settings(config_path))
    await gateway.start()
    try:
        await send(gateway, sample("14-broken-mime.eml"))
        await send(gateway, sample("01-new-utf8-cc.eml"))  # the queue goes on past the bad mail
        await gateway.drain()
        first, second = spool_rows(gateway.settings.database.path)
        assert first["status"] == "failed" and "parser bug on legacy ERP mail" in first["error"]
        assert first["raw"] == sample("14-broken-mime.eml")
        assert second["status"] == "done"

        monkeypatch.setattr(parse_module, "parse_mail", real_parse)  # the fix is deployed
        assert await gateway.pipeline.spool.retry([first["id"]]) == [first["id"]]
        await gateway.drain()
        first, _ = spool_rows(gateway.settings.database.path)
        assert first["status"] == "done" and first["error"] is None
        assert len(await all_tickets(gateway)) == 2
    finally:
        await gateway.stop()


async def test_mail_without_any_sender_is_kept_raw_as_a_bounce(gateway: Gateway) -> None:
    raw = b"To: soporte.latam@estela.example\r\nSubject: sin remitente\r\n\r\nhola\r\n"
    await send(gateway, raw, sender="")  # MAIL FROM:<> is how bounces come (RFC 5321)
    await gateway.drain()
    [row] = spool_rows(gateway.settings.database.path)
    assert row["status"] == "ignored" and "null_sender" in row["outcome"] and row["raw"] == raw
    assert await all_tickets(gateway) == []


async def test_mail_with_an_unusable_sender_is_kept_failed_with_reason(gateway: Gateway) -> None:
    raw = b"To: soporte.latam@estela.example\r\nSubject: sin remitente\r\n\r\nhola\r\n"
    await gateway.pipeline.spool.add("not-an-address", [MAILBOX], "test", raw)  # as `ingest --sender` may
    await gateway.drain()
    [row] = spool_rows(gateway.settings.database.path)
    assert row["status"] == "failed" and "no sender address" in row["error"]


async def test_envelope_sender_is_the_requester_when_from_is_missing(gateway: Gateway) -> None:
    raw = b"To: soporte.latam@estela.example\r\nSubject: sin from\r\n\r\nhola\r\n"
    await send(gateway, raw, sender="cliente@empresa.example")
    await gateway.drain()
    [tk] = await all_tickets(gateway)
    assert tk["requester"] == "cliente@empresa.example"


async def test_ticket_numbers_are_sequential_and_zero_padded(gateway: Gateway) -> None:
    for index in range(3):
        await send(gateway, make_mail(f"caso {index}"))
    await gateway.drain()
    assert [tk["number"] for tk in await all_tickets(gateway)] == ["TK-000001", "TK-000002", "TK-000003"]


async def test_a_long_backlog_gets_451_until_the_pipeline_catches_up(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_PIPELINE__MAX_BACKLOG", "3")
    gateway = Gateway(load_settings(config_path))
    await gateway.start()
    try:
        async with gateway.pipeline._in_hand:  # the pipeline is stuck: mail piles up
            for index in range(3):
                await send(gateway, make_mail(f"caso {index}"))
            await gateway.handler.recount_backlog()  # now, not within the next 250 ms
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                await send(gateway, make_mail("uno más"))
            code, text = refused.value.recipients[MAILBOX]
            assert code == 451 and text.startswith(b"4.3.2")  # the sender keeps it and retries
        await gateway.drain()
        await gateway.handler.recount_backlog()
        assert await send(gateway, make_mail("uno más")) == {}
        await gateway.drain()
        assert len(await all_tickets(gateway)) == 4
    finally:
        await gateway.stop()


async def test_large_mail_with_dot_lines_is_stored_byte_for_byte(tmp_path: Path) -> None:
    lines = [b".l\xc3\xadnea que empieza con punto" if index % 7 == 0 else b"x" * 76 for index in range(40_000)]
    head = b"From: c@empresa.example\r\nTo: soporte.latam@estela.example\r\nSubject: grande\r\n\r\n"
    raw = head + b"\r\n".join(lines) + b"\r\n"
    assert len(raw) > 2 * 1024 * 1024  # past what the reader keeps in memory: it goes to disk
    gateway = Gateway(load_settings(write_config(tmp_path, max_size=8_000_000)))
    await gateway.start()
    try:
        await send(gateway, raw)  # smtplib dot-stuffs the "." lines; the reader must unstuff them
        [row] = spool_rows(gateway.settings.database.path)
        assert row["raw"] == raw
    finally:
        await gateway.stop()


async def test_mail_without_message_id_delivered_twice_is_stored_once(gateway: Gateway) -> None:
    raw = b"From: c@empresa.example\r\nTo: soporte.latam@estela.example\r\nSubject: sin id\r\n\r\nhola\r\n"
    await send(gateway, raw)
    await send(gateway, raw)  # the MTA's retry after a lost 250
    await send(gateway, raw.replace(b"hola", b"otra cosa"))  # a different mail
    await gateway.drain()
    assert len(await all_tickets(gateway)) == 2
