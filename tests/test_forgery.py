"""Issue 14, items 4, 5 and 8, tried as an attacker would: mail straight to the listener.

A forged From with customer commands, a mail copying thousands, a signed address of ours
with a bad signature: nothing changes and nobody but the agents hears of it. The genuine
paths still work: a reply to our acknowledgement closes the ticket (and the requester is
told), a valid rating link records the rating.
"""

from __future__ import annotations

import pytest

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, Sink, make_mail, send, spool_rows
from tests.support.desk import AGENTS, CC, REQUESTER, agent_answers, last_to, opened, rating_address, text_of

FROM_REQUESTER = f"María José Pérez <{REQUESTER}>"
ATTACKER = "attacker@evil.example"  # the envelope sender: anyone
FORGED_RATING = "soporte.latam+rate.TK-000001.2.yes.0000000000000000@estela.example"


async def ticket(gateway: Gateway, number: str = "TK-000001") -> dict:
    shown = await gateway.pipeline.queries.show_ticket(number)
    assert shown is not None
    return shown


def outside_recipients(relay: Sink, since: int) -> list[str]:
    """Everyone but the agents who was sent mail since `since`."""
    return [rcpt for mail in relay.received[since:] for rcpt in mail.rcpt_tos if rcpt != AGENTS]


async def deliver(gateway: Gateway, raw: bytes, recipients: list[str] | None = None) -> None:
    await send(gateway, raw, recipients or [MAILBOX], sender=ATTACKER)
    await gateway.drain()


# -- item 4: a forged From closes someone's ticket unseen -------------------------------------


async def ids_of_ours(gateway: Gateway, relay: Sink) -> dict[str, str]:
    """Message-IDs a forger could quote: the customer's own, one we sent the agents, a made-up one."""
    return {
        "customer's own mail": "<CAF01.001@mail.distribuidora-andes.example>",
        "our mail to the agents": last_to(relay, AGENTS).message["Message-ID"],
        "made up": "<guess.1@estela.example>",
    }


@pytest.mark.parametrize("command", ["#cerrar", "#resuelto", "#prioridad baja", "#CERRAR\n#prioridad baja"])
@pytest.mark.parametrize("threading", [None, "customer's own mail", "our mail to the agents", "made up"])
async def test_a_forged_from_with_customer_commands_changes_nothing(
    gateway: Gateway, relay: Sink, command: str, threading: str | None
) -> None:
    await opened(gateway, relay)
    headers = {}
    if threading is not None:
        quoted = (await ids_of_ours(gateway, relay))[threading]
        headers = {"In-Reply-To": quoted, "References": quoted}
    before = len(relay.received)
    raw = make_mail("Re: [#TK-000001] factura", f"{command}\nCerrado, gracias.", FROM_REQUESTER, extra_headers=headers)
    await deliver(gateway, raw)
    tk = await ticket(gateway)
    assert (tk["status"], tk["priority"]) == ("open", "urgent")  # 0 status changes
    assert outside_recipients(relay, before) == []  # 0 mails to anyone but agents
    told = relay.received[before:]
    assert told and "no se aplicó" in text_of(told[-1]) and "#" in text_of(told[-1])  # agents see why
    kept = tk["messages"][-1]
    assert kept["visibility"] == "internal" and "not honoured" in kept["note"]
    assert command.split("\n")[0] in kept["body"]  # the command lines are kept as text


async def test_a_cc_may_not_close_the_ticket_even_in_a_reply_to_our_mail(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    acknowledgement = last_to(relay, CC).message["Message-ID"]  # the CC had the acknowledgement too
    before = len(relay.received)
    headers = {"In-Reply-To": acknowledgement}
    raw = make_mail("Re: [#TK-000001] factura", "#cerrar", f"Jorge <{CC}>", extra_headers=headers)
    await deliver(gateway, raw)
    assert (await ticket(gateway))["status"] == "open"
    assert outside_recipients(relay, before) == []


async def test_a_reply_to_our_acknowledgement_closes_and_the_requester_is_told(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER).message["Message-ID"]
    before = len(relay.received)
    raw = make_mail("Re: [#TK-000001] factura", "#cerrar\nListo.", FROM_REQUESTER,
                    extra_headers={"In-Reply-To": acknowledgement})  # fmt: skip
    await deliver(gateway, raw)
    assert (await ticket(gateway))["status"] == "closed"
    [confirmation] = [mail for mail in relay.received[before:] if REQUESTER in mail.rcpt_tos]
    assert confirmation.rcpt_tos == [REQUESTER]  # to the requester, though they are the author
    assert "Cerrado" in text_of(confirmation) and "en su nombre" in text_of(confirmation)
    assert "Cerrado" in text_of(last_to(relay, CC))  # the CC hears of the status as before


async def test_a_mail_to_a_signed_address_bound_to_the_requester_may_use_commands(gateway: Gateway,
                                                                                 relay: Sink) -> None:  # fmt: skip
    await opened(gateway, relay)
    signed = gateway.pipeline.signer.reply_address(MAILBOX, "TK-000001", bound_to=REQUESTER)
    await deliver(gateway, make_mail("Re: [#TK-000001] factura", "#resuelto", FROM_REQUESTER, to=signed), [signed])
    assert (await ticket(gateway))["status"] == "resolved"
    assert "Resuelto" in text_of(last_to(relay, REQUESTER))


# -- item 5: one mail fans out to thousands of outside addresses ------------------------------


def copied(count: int, domain: str = "victims.example") -> list[str]:
    return [f"person{index}@{domain}" for index in range(count)]


async def test_a_new_mail_copying_2000_addresses_reaches_at_most_the_cap(gateway: Gateway, relay: Sink) -> None:
    strangers = copied(2000)
    raw = make_mail("Oferta imperdible", "Visite http://spam.example", "spammer@evil.example", cc=", ".join(strangers))
    await deliver(gateway, raw)
    limit = gateway.settings.limits.max_new_participants_per_mail
    tk = await ticket(gateway)
    assert sorted(tk["cc"]) == sorted(strangers[:limit])
    outside = outside_recipients(relay, 0)
    assert len(outside) == 1 + limit and set(outside) <= {"spammer@evil.example", *strangers[:limit]}
    notice = text_of(last_to(relay, AGENTS))  # agents see who was left out, and how many
    assert strangers[limit] in notice and str(2000 - limit - 100) in notice
    note = tk["messages"][0]["note"]
    assert f"{2000 - limit} copied address(es) not added" in note and strangers[limit] in note


async def test_a_reply_copying_many_adds_at_most_the_cap(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    acknowledgement = last_to(relay, REQUESTER).message["Message-ID"]
    before = len(relay.received)
    raw = make_mail("Re: [#TK-000001] factura", "Sumo a todos.", FROM_REQUESTER, cc=", ".join(copied(500)),
                    extra_headers={"In-Reply-To": acknowledgement})  # fmt: skip
    await deliver(gateway, raw)
    limit = gateway.settings.limits.max_new_participants_per_mail
    assert len((await ticket(gateway))["cc"]) == 1 + limit
    assert len(set(outside_recipients(relay, before))) <= 1 + limit


async def test_no_notification_goes_to_more_than_the_cap(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    for batch in range(3):  # 30 people join, 10 at a time, in replies to our acknowledgement
        raw = make_mail("Re: [#TK-000001] factura", "Más gente.", FROM_REQUESTER,
                        cc=", ".join(copied(10, f"b{batch}.example")))  # fmt: skip
        await deliver(gateway, raw)
    assert len((await ticket(gateway))["cc"]) == 31
    before = len(relay.received)
    await agent_answers(gateway, notice, "Respuesta para todos.")
    [answer] = relay.received[before:]
    assert len(answer.rcpt_tos) == gateway.settings.limits.max_recipients_per_notification
    assert REQUESTER in answer.rcpt_tos


# -- item 8: a signed address with a bad signature is taken as an ordinary reply --------------

FORGED_TAGS = [
    FORGED_RATING,
    FORGED_RATING.upper(),
    "soporte.latam+TK-000001.0000000000000000@estela.example",
    "soporte.latam+b.12.0123456789abcdef@estela.example",
    "soporte.latam+cualquier.0123456789abcdef@estela.example",
    "soporte.latam+TK-000001@estela.example",
    "ventas+rate.TK-000001.1.yes.0123456789abcdef@estela.example",
]


@pytest.mark.parametrize("address", FORGED_TAGS)
@pytest.mark.parametrize("where", ["envelope and To", "envelope only", "Cc header only"])
async def test_mail_to_an_address_of_ours_we_did_not_sign_changes_nothing(
    gateway: Gateway, relay: Sink, address: str, where: str
) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado resuelto")
    before = len(relay.received)
    to, cc, envelope = {
        "envelope and To": (address, None, [address]),
        "envelope only": (MAILBOX, None, [address]),
        "Cc header only": (MAILBOX, address, [MAILBOX]),
    }[where]
    raw = make_mail("[#TK-000001] Sí me ayudó", "Sigue fallando.", FROM_REQUESTER, to=to, cc=cc)
    await deliver(gateway, raw, envelope)
    tk = await ticket(gateway)
    assert tk["status"] == "resolved" and tk["rating"] is None  # not reopened, not rated
    assert tk["cc"] == [CC]  # no address of ours became a participant
    assert outside_recipients(relay, before) == []
    assert not any("estela.example" in rcpt and rcpt != AGENTS for m in relay.received for rcpt in m.rcpt_tos)
    assert tk["messages"][-1]["visibility"] == "internal" and "does not verify" in tk["messages"][-1]["note"]


async def test_a_forged_tag_naming_a_ticket_is_kept_on_it_even_without_a_token(gateway: Gateway,
                                                                              relay: Sink) -> None:  # fmt: skip
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado resuelto")
    await deliver(gateway, make_mail("Gracias", "Sigue fallando.", FROM_REQUESTER, to=FORGED_RATING), [FORGED_RATING])
    tk = await ticket(gateway)
    assert tk["status"] == "resolved" and "does not verify" in tk["messages"][-1]["note"]
    assert len(await gateway.pipeline.queries.list_tickets()) == 1


async def test_a_new_mail_to_a_forged_signed_address_opens_nothing(gateway: Gateway, relay: Sink) -> None:
    address = "soporte.latam+TK-000777.0123456789abcdef@estela.example"
    await deliver(gateway, make_mail("Hola", "Nuevo.", "x@cliente.example", to=address), [address])
    assert await gateway.pipeline.queries.list_tickets() == [] and relay.received == []
    [row] = spool_rows(gateway.settings.database.path)
    assert row["status"] == "ignored" and "does not verify" in row["outcome"] and row["raw"]


async def test_a_valid_rating_link_still_records_the_rating(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#estado resuelto")
    helpful = rating_address(last_to(relay, REQUESTER), "Sí")
    await deliver(gateway, make_mail("[#TK-000001] Sí me ayudó", "", FROM_REQUESTER, to=helpful), [helpful])
    tk = await ticket(gateway)
    assert tk["rating"]["helpful"] is True and tk["status"] == "resolved"


async def test_agents_cannot_copy_an_address_of_ours(gateway: Gateway, relay: Sink) -> None:
    notice = await opened(gateway, relay)
    await agent_answers(gateway, notice, "#cc +soporte.latam+x@estela.example\n\nLos copio.")
    assert (await ticket(gateway))["cc"] == [CC]
    told = text_of(last_to(relay, "csoto@estela.example"))  # in the mailbox's language, quoting the line
    assert "#cc +soporte.latam+x@estela.example" in told and "es una dirección nuestra" in told


async def test_plain_sub_addressing_still_routes_but_never_becomes_a_participant(gateway: Gateway,
                                                                                relay: Sink) -> None:  # fmt: skip
    plain = "soporte.latam+urgente@estela.example"  # RFC 5233 sub-addressing: no signed form
    await deliver(gateway, make_mail("Hola", "Nuevo.", FROM_REQUESTER, to=plain, cc=f"ventas+x@estela.example, {CC}"),
                  [plain])  # fmt: skip
    tk = await ticket(gateway)
    assert tk["cc"] == [CC] and tk["status"] == "open"
    assert not any("estela.example" in rcpt and rcpt != AGENTS for m in relay.received for rcpt in m.rcpt_tos)
