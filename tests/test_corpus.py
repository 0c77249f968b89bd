"""Odd real-world mail through the real listener over SMTP: nothing raises, nothing is lost."""

from __future__ import annotations

from gateway.daemon import Gateway
from tests.conftest import ReceivedMail, Sink, crlf, send, spool_rows
from tests.support.parsing import corpus

# What a failed spool row may say: a reason the pipeline gives for mail it cannot take
# (kept raw). An AttributeError, TypeError, UnicodeError... is the parser breaking.
REASONED_FAILURES = ("UnprocessableMailError: ",)


async def test_every_corpus_mail_sent_over_smtp_is_accounted_for(gateway: Gateway) -> None:
    paths = corpus()
    assert len([path for path in paths if path.name.startswith("msg_")]) >= 40  # CPython's data/msg_*.txt
    for path in paths:
        assert await send(gateway, crlf(path.read_bytes())) == {}, path.name
    await gateway.drain()

    rows = spool_rows(gateway.settings.database.path)
    assert len(rows) == len(paths)
    stored = await gateway.pipeline.database.fetch_all("SELECT DISTINCT spool_id FROM messages")
    in_a_ticket = {row["spool_id"] for row in stored}
    for path, row in zip(paths, rows, strict=True):
        sent = crlf(path.read_bytes())
        sent += b"" if sent.endswith(b"\r\n") else b"\r\n"  # SMTP ends DATA on a line
        assert row["raw"] == sent, path.name  # the raw bytes are always kept
        if row["status"] == "failed":
            assert row["error"].startswith(REASONED_FAILURES), (path.name, row["error"])
        elif row["status"] == "ignored":  # a loop, bounce or automatic mail for no ticket
            assert row["outcome"].startswith("ignored: "), path.name
        else:
            assert row["status"] == "done", (path.name, row["status"], row["error"])
            assert row["id"] in in_a_ticket or row["outcome"].startswith("duplicate"), (path.name, row["outcome"])


RAW_LATIN1 = (
    b"From: Jos\xe9 P\xe9rez <jose@cliente.example>\r\n"
    b"To: soporte.latam@estela.example\r\n"
    b"Subject: Facturaci\xf3n a\xf1o\x00 2026\r\n"
    b"Message-ID: <raw-latin1.1@cliente.example>\r\n"
    b"\r\n"
    b"No puedo emitir la factura.\r\n"
)


async def test_raw_latin1_headers_reach_the_ticket_and_the_acknowledgement_whole(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, RAW_LATIN1)
    await gateway.drain()

    [tk] = await gateway.pipeline.queries.list_tickets()
    assert tk["subject"] == "Facturación año 2026"
    assert (tk["requester"], tk["requester_name"]) == ("jose@cliente.example", "José Pérez")
    [ack] = await relay.handler.wait_for_mail_to("jose@cliente.example", seconds=30)
    assert _to_header(ack) == "José Pérez <jose@cliente.example>"
    assert b"\\udc" not in ack.raw and b"\xed\xb3" not in ack.raw  # no surrogate escape, written or encoded


def _to_header(mail: ReceivedMail) -> str:
    return str(mail.message["To"])
