"""A delivery report is believed only when it comes back to the signed return address
(VERP) of the mail it reports on: a forged `multipart/report` naming a ticket and its
requester silences nobody."""

from __future__ import annotations

import pytest

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, Sink, crlf, make_mail, send, spool_rows
from tests.support.desk import agent_answers, last_to

REQUESTER = "maria@cliente.example"
AGENTS = "agentes@estela.example"


def report(final_recipient: str, subject: str = "Re: [#TK-000001] No puedo facturar") -> bytes:
    """An RFC 3464 report as Postfix writes one, saying `final_recipient` does not exist."""
    return crlf(
        f"""From: MAILER-DAEMON@mx.otro.example (Mail Delivery System)
To: {MAILBOX}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{final_recipient}@mx.otro.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"

--r
Content-Type: text/plain

Your message could not be delivered.

--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.otro.example

Final-Recipient: rfc822; {final_recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{final_recipient}>: Recipient address rejected

--r
Content-Type: text/rfc822-headers

From: Soporte LATAM <{MAILBOX}>
Subject: {subject}

--r--
""".encode()
    )


async def open_ticket(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, make_mail("No puedo facturar", sender=f"María <{REQUESTER}>", cc="jefe@cliente.example"))
    await gateway.drain()


async def participant_statuses(gateway: Gateway) -> dict[str, str]:
    rows = await gateway.pipeline.database.fetch_all("SELECT address, status FROM participants")
    return {row["address"]: row["status"] for row in rows}


@pytest.mark.parametrize(
    "to",
    [
        MAILBOX,  # the plain mailbox, as the attacker sent it
        "soporte.latam+b.0123456789abcdef.0000000000000000@estela.example",  # a made-up return address
        "soporte.latam+TK-000001.0000000000000000@estela.example",  # another kind of tag
    ],
)
async def test_a_forged_report_silences_nobody(gateway: Gateway, relay: Sink, to: str) -> None:
    await open_ticket(gateway, relay)
    await send(gateway, report(REQUESTER), [to], sender="")
    await gateway.drain()
    assert (await participant_statuses(gateway))[REQUESTER] == "active"
    assert spool_rows(gateway.settings.database.path)[-1]["status"] == "ignored"

    before = len(relay.handler.to(REQUESTER))
    await agent_answers(gateway, last_to(relay, AGENTS), "Ya está corregido.")
    assert len(relay.handler.to(REQUESTER)) == before + 1  # the next agent reply still reaches her


async def test_a_report_to_a_return_address_counts_only_for_that_mails_recipients(
    gateway: Gateway, relay: Sink
) -> None:
    """Even through a genuine return address, a report can silence only someone that mail
    was sent to: the agents' notice's return address cannot silence the requester."""
    await open_ticket(gateway, relay)
    agents_notice = last_to(relay, AGENTS)
    await send(gateway, report(REQUESTER), [agents_notice.mail_from], sender="")
    await gateway.drain()
    assert (await participant_statuses(gateway))[REQUESTER] == "active"

    acknowledgement = last_to(relay, REQUESTER)
    await send(gateway, report("jefe@cliente.example"), [acknowledgement.mail_from], sender="")
    await gateway.drain()
    assert await participant_statuses(gateway) == {REQUESTER: "active", "jefe@cliente.example": "bounced"}


async def test_every_notification_has_a_return_address_of_its_own(gateway: Gateway, relay: Sink) -> None:
    await open_ticket(gateway, relay)
    await send(gateway, make_mail("Otro caso", sender="otra@cliente.example"))
    await gateway.drain()
    senders = [mail.mail_from for mail in relay.received]
    assert len(senders) == len(set(senders)) == 4
    assert all(sender.startswith("soporte.latam+b.") and sender.endswith("@estela.example") for sender in senders)


async def test_the_same_report_delivered_twice_is_a_duplicate(gateway: Gateway, relay: Sink) -> None:
    await open_ticket(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER)
    for _ in range(2):
        await send(gateway, report("jefe@cliente.example"), [acknowledgement.mail_from], sender="")
    await gateway.drain()
    first, second = spool_rows(gateway.settings.database.path)[-2:]
    assert first["status"] == "done" and second["status"] == "done", second["error"]
    assert second["outcome"].startswith("duplicate")
