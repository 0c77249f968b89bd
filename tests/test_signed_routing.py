"""Tried as customers and agents do: a signed address decides the ticket by itself.

A customer clicks "No me ayudó" and rewrites the subject, or the mail program drops it; an
agent hits Reply and changes the subject, or pastes another ticket's; an autoresponder
answers our return address (RFC 3834 §4: automatic replies go to the Return-Path). Each
acts on the ticket its signed address names, never on a new ticket or on the ticket a
subject, In-Reply-To or References names, even when the plain mailbox is copied too.
"""

from __future__ import annotations

import pytest

from gateway.daemon import Gateway
from gateway.desk.route import NEW, Clue, Evidence, Route, weigh
from gateway.model import TicketRef
from gateway.rules.signed_addresses import SignedTag, Signer
from tests.conftest import MAILBOX, Sink, make_mail, send
from tests.support.desk import (
    AGENT,
    AGENTS,
    CC,
    REQUESTER,
    agent_answers,
    customer_writes,
    last_to,
    opened,
    rating_address,
    text_of,
    ticket,
)

FROM_REQUESTER = f"María José Pérez <{REQUESTER}>"
NO_SUBJECT = "(the mail program dropped it)"
SUBJECTS = {
    "as the link made it": "[#TK-000001] No me ayudó",
    "changed": "Calificación",
    "empty": "",
    "removed": NO_SUBJECT,
    "naming another ticket": "Re: [#TK-000002] Impresora bloqueada",
}
REWRITTEN = {key: subject for key, subject in SUBJECTS.items() if key != "as the link made it"}
RECIPIENTS = ["signed address only", "plain mailbox too"]


ONE, TWO, THREE = (TicketRef(n, f"TK-00000{n}", "open") for n in (1, 2, 3))
SIGNED = Clue(ONE, "signed rating address <soporte.latam+rate.TK-000001…>")
SUBJECT = Clue(TWO, "subject token TK-000002")
THREAD = Clue(THREE, "In-Reply-To <x@estela.example>")
DUPLICATE = Clue(TWO, "Message-ID <m@x> already stored")


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (Evidence(), NEW),
        (Evidence(thread=THREAD), Route("reply", THREE, THREAD.reason)),
        (Evidence(subject=SUBJECT, thread=THREAD), Route("reply", TWO, SUBJECT.reason)),
        (Evidence(signed=(SIGNED,)), Route("reply", ONE, SIGNED.reason)),
        (Evidence(signed=(SIGNED,), subject=SUBJECT), Route("reply", ONE, f"{SIGNED.reason} (over {SUBJECT.reason})")),
        (Evidence(signed=(SIGNED,), thread=THREAD), Route("reply", ONE, f"{SIGNED.reason} (over {THREAD.reason})")),
        (Evidence(signed=(SIGNED,), subject=Clue(ONE, "subject token TK-000001")), Route("reply", ONE, SIGNED.reason)),
        (Evidence(signed=(SIGNED, Clue(TWO, "signed reply address")), subject=SUBJECT),
         Route("reply", ONE, f"{SIGNED.reason} (over signed reply address; {SUBJECT.reason})")),
        (Evidence(duplicate=DUPLICATE, signed=(SIGNED,)), Route("duplicate", TWO, DUPLICATE.reason)),
    ],
)  # fmt: skip
def test_weighing_the_verified_signed_address_wins(evidence: Evidence, expected: Route) -> None:
    assert weigh(evidence) == expected


def mail_to(address: str, subject: str, body: str, sender: str, **headers: str) -> bytes:
    raw = make_mail(subject or "-", body, sender, to=address, extra_headers=headers)
    if subject == NO_SUBJECT:
        return raw.replace(f"Subject: {NO_SUBJECT}\r\n".encode(), b"")
    return raw if subject else raw.replace(b"Subject: -\r\n", b"Subject: \r\n")


def envelope(signed: str, recipients: str) -> list[str]:
    return {
        "signed address only": [signed],
        "plain mailbox too": [MAILBOX, signed],  # the mailbox first: the signed address still decides
    }[recipients]


async def two_tickets(gateway: Gateway, relay: Sink) -> dict[str, str]:
    """TK-000001 (with a CC) and TK-000002 from the same customer; returns what our mail
    to them carried: TK-000001's agents' notice Reply-To and return address, and the
    Message-ID of TK-000002's acknowledgement (another ticket's thread)."""
    notice = await opened(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER)
    await customer_writes(gateway, "Impresora bloqueada", "La impresora fiscal no imprime.")
    assert len(await gateway.pipeline.queries.list_tickets()) == 2
    return {
        "reply_to": str(notice.message["Reply-To"]),
        "return_address": acknowledgement.mail_from,
        "other_thread": str(last_to(relay, REQUESTER).message["Message-ID"]),
    }


async def untouched_second_ticket(gateway: Gateway) -> None:
    assert len(await gateway.pipeline.queries.list_tickets()) == 2  # no new ticket
    other = await ticket(gateway, "TK-000002")
    assert len(other["messages"]) == 1 and (other["status"], other["priority"]) == ("open", "medium")


def no_address_of_ours_mailed(relay: Sink) -> None:
    assert not any("estela.example" in rcpt and rcpt != AGENTS for m in relay.received for rcpt in m.rcpt_tos)


@pytest.mark.parametrize("recipients", RECIPIENTS)
@pytest.mark.parametrize("subject", SUBJECTS.values(), ids=SUBJECTS.keys())
async def test_a_rating_link_records_the_rating_whatever_the_subject(
    gateway: Gateway, relay: Sink, subject: str, recipients: str
) -> None:
    sent = await two_tickets(gateway, relay)
    await agent_answers(gateway, relay.handler.to(AGENTS)[0], "#estado resuelto")
    not_helpful = rating_address(last_to(relay, REQUESTER), "No")
    raw = mail_to(not_helpful, subject, "Sigue lento al emitir.", FROM_REQUESTER)  # no In-Reply-To
    await send(gateway, raw, envelope(not_helpful, recipients))
    await gateway.drain()
    tk = await ticket(gateway)
    assert tk["rating"]["helpful"] is False and "Sigue lento" in tk["rating"]["comment"]
    assert tk["status"] == "resolved" and tk["cc"] == [CC]  # not reopened; our address no CC
    await untouched_second_ticket(gateway)
    no_address_of_ours_mailed(relay)
    assert sent["reply_to"] not in tk["cc"]


@pytest.mark.parametrize("threading", ["none", "another ticket's thread"])
@pytest.mark.parametrize("recipients", RECIPIENTS)
@pytest.mark.parametrize("subject", REWRITTEN.values(), ids=REWRITTEN.keys())
async def test_an_agent_reply_address_acts_on_its_ticket_whatever_the_subject_or_thread(
    gateway: Gateway, relay: Sink, subject: str, recipients: str, threading: str
) -> None:
    sent = await two_tickets(gateway, relay)
    headers = {} if threading == "none" else {"In-Reply-To": sent["other_thread"], "References": sent["other_thread"]}
    raw = mail_to(sent["reply_to"], subject, "#prioridad alta\n\nRenovamos el certificado.", AGENT, **headers)
    await send(gateway, raw, envelope(sent["reply_to"], recipients))
    await gateway.drain()
    tk = await ticket(gateway)
    assert tk["priority"] == "high" and tk["first_response_at"] is not None  # honoured on TK-000001
    answer = last_to(relay, REQUESTER)
    assert "Renovamos el certificado." in text_of(answer) and CC in answer.rcpt_tos
    assert "TK-000001" in str(answer.message["Subject"])
    await untouched_second_ticket(gateway)
    no_address_of_ours_mailed(relay)


@pytest.mark.parametrize("recipients", RECIPIENTS)
@pytest.mark.parametrize("subject", REWRITTEN.values(), ids=REWRITTEN.keys())
async def test_a_reply_to_our_return_address_lands_on_that_mails_ticket(
    gateway: Gateway, relay: Sink, subject: str, recipients: str
) -> None:
    sent = await two_tickets(gateway, relay)
    returned = sent["return_address"]
    assert "+b." in returned
    raw = mail_to(returned, subject, "Adjunto el XML rechazado.", FROM_REQUESTER)
    await send(gateway, raw, envelope(returned, recipients))
    await gateway.drain()
    tk = await ticket(gateway)
    assert tk["messages"][-1]["body"].startswith("Adjunto el XML rechazado.")
    assert tk["cc"] == [CC]
    await untouched_second_ticket(gateway)
    no_address_of_ours_mailed(relay)


async def test_an_out_of_office_answer_to_our_return_address_is_kept_on_its_ticket(
    gateway: Gateway, relay: Sink
) -> None:
    sent = await two_tickets(gateway, relay)
    returned = sent["return_address"]
    before = len(relay.received)
    automatic = {"Auto-Submitted": "auto-replied"}
    raw = mail_to(returned, "Fuera de la oficina", "Vuelvo el lunes.", FROM_REQUESTER, **automatic)
    await send(gateway, raw, [returned], sender="")
    await gateway.drain()
    tk = await ticket(gateway)
    assert tk["messages"][-1]["visibility"] == "system" and "Vuelvo el lunes." in tk["messages"][-1]["body"]
    assert relay.received[before:] == []  # never answered
    await untouched_second_ticket(gateway)


async def test_a_rating_whose_subject_reads_my_tickets_is_still_a_rating(gateway: Gateway, relay: Sink) -> None:
    await two_tickets(gateway, relay)
    await agent_answers(gateway, relay.handler.to(AGENTS)[0], "#estado resuelto")
    helpful = rating_address(last_to(relay, REQUESTER), "Sí")
    await send(gateway, mail_to(helpful, "Mis tickets", "Gracias.", FROM_REQUESTER), [helpful])
    await gateway.drain()
    assert (await ticket(gateway))["rating"]["helpful"] is True


def test_signed_tag_names_what_a_verified_address_names() -> None:
    signer = Signer(b"secret")
    reply = signer.reply_address(MAILBOX, "TK-000007", bound_to=AGENTS)
    assert signer.signed_tag(reply, ["x@cliente.example", AGENTS]) == SignedTag("reply", number="TK-000007")
    assert signer.signed_tag(reply.upper(), [AGENTS]) == SignedTag("reply", number="TK-000007")  # MTAs change case
    assert signer.signed_tag(reply, ["x@cliente.example"]) is None  # bound to someone else
    rating = signer.rating_address(MAILBOX, "TK-000007", 2, helpful=False)
    assert signer.signed_tag(rating, []) == SignedTag("rating", number="TK-000007")
    returned = signer.bounce_address(MAILBOX, "0123456789abcdef")
    assert signer.signed_tag(returned, []) == SignedTag("return", token="0123456789abcdef")
    for forged in (rating.replace(".no.", ".yes."), Signer(b"other").bounce_address(MAILBOX, "0123456789abcdef")):
        assert signer.signed_tag(forged, [AGENTS]) is None
