"""Mail loops with auto-responders that ignore RFC 3834 (no Auto-Submitted, no Precedence,
a plain threaded "Re:"): whatever they do, the exchange dies out under the bounds of
[notifications], and agents hear once of each address that was muted.

Driven step by step: drain the gateway, let every bot answer every new mail it was sent,
send those answers over SMTP, again, until a drain sends no bot anything new.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

from gateway.daemon import Gateway
from gateway.settings import Settings
from tests.conftest import ReceivedMail, Sink, crlf, make_mail, send

BOT_A = "bot.a@cliente.example"  # the requester's auto-responder
BOT_B = "bot.b@proveedor.example"  # a second one, copied
AGENTS = "agentes@estela.example"
AGENT = "csoto@estela.example"  # an agent whose out-of-office answers the agents' list
SAFETY_NET = 500  # bot mails: today's gateway never stops; the bounds must stop far sooner
MUTED_SUBJECT = re.compile(r"Notificaciones silenciadas por una hora: (.+)$")


def answer(mail: ReceivedMail, as_address: str) -> tuple[str, bytes]:
    """A naive responder's answer: to Reply-To (else From), threaded, nothing marks it automatic."""
    original = mail.message
    to = parseaddr(str(original.get("Reply-To") or original.get("From")))[1]
    reply = EmailMessage()
    reply["From"] = as_address
    reply["To"] = to
    reply["Subject"] = f"Re: {original['Subject']}"
    reply["Message-ID"] = make_msgid(domain="responder.example")
    reply["In-Reply-To"] = str(original["Message-ID"])
    reply.set_content("Gracias por su mensaje. Estaré fuera de la oficina hasta el lunes.")
    return to, crlf(reply.as_bytes())


async def converse(gateway: Gateway, relay: Sink, bots: dict[str, str]) -> int:
    """Until the gateway sends no bot anything new; `bots`: the address a bot reads → the
    address it answers as. Returns how many mails the bots sent."""
    seen = sent = 0
    while True:
        await gateway.drain()  # every mail processed, every notification due delivered
        new, seen = relay.received[seen:], len(relay.received)
        answers = [answer(mail, bots[rcpt]) for mail in new for rcpt in mail.rcpt_tos if rcpt in bots]
        if not answers:
            return sent
        for to, raw in answers:
            await send(gateway, raw, [to], sender=parseaddr(str(ReceivedMail("", [], raw).message["From"]))[1])
            sent += 1
        assert sent < SAFETY_NET, f"still looping after {sent} mails from the bots, {len(relay.received)} from us"


def notices_naming(relay: Sink) -> list[str]:
    """The addresses named by the agents' "notifications muted" notices, one entry per naming."""
    named: list[str] = []
    for mail in relay.handler.to(AGENTS):
        found = MUTED_SUBJECT.search(str(mail.message["Subject"]))
        if found:
            named += [address.strip() for address in found[1].split(",")]
    return named


async def test_two_auto_responders_on_one_ticket_stop_within_the_bound(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, make_mail("Factura rechazada", sender=f"Bot A <{BOT_A}>", cc=f"Bot B <{BOT_B}>"),
               sender=BOT_A)  # fmt: skip
    bot_mails = await converse(gateway, relay, {BOT_A: BOT_A, BOT_B: BOT_B})
    limit = gateway.settings.notifications.per_recipient_per_ticket_per_hour
    print(f"loop: {bot_mails} mails from the bots, {len(relay.received)} from the gateway")
    assert len(await gateway.pipeline.queries.list_tickets()) == 1
    assert len(relay.handler.to(BOT_A)) <= limit
    assert len(relay.handler.to(BOT_B)) <= limit
    assert sorted(notices_naming(relay)) == [AGENTS, BOT_A, BOT_B], "agents are told once of each muted address"
    ticket = await gateway.pipeline.queries.show_ticket("TK-000001")
    assert ticket is not None
    muted = [change["new"] for change in ticket["history"] if change["field"] == "notifications_muted"]  # type: ignore[attr-defined]
    assert sorted(muted) == [AGENTS, BOT_A, BOT_B]  # `tickets show` says who stopped hearing of it
    assert len(relay.handler.to(AGENTS)) <= limit + 3  # its own notifications, and the three notices
    assert bot_mails <= 2 * limit  # each bot answered only what it got


async def test_an_agents_out_of_office_and_a_customer_bot_stop_within_the_bound(gateway: Gateway, relay: Sink) -> None:
    await send(gateway, make_mail("Factura rechazada", sender=f"Bot A <{BOT_A}>"), sender=BOT_A)
    bot_mails = await converse(gateway, relay, {BOT_A: BOT_A, AGENTS: AGENT})
    limit = gateway.settings.notifications.per_recipient_per_ticket_per_hour
    print(f"loop: {bot_mails} mails from the bots, {len(relay.received)} from the gateway")
    assert bot_mails > 2, "the agent's out-of-office did answer (through the signed reply address)"
    assert len(relay.handler.to(BOT_A)) <= limit
    assert sorted(notices_naming(relay)) == [AGENTS, BOT_A], "agents are told once of each muted address"
    assert len(relay.handler.to(AGENTS)) <= limit + 2  # its own notifications, and the two notices


async def test_the_bound_per_ticket_counts_the_mails_one_event_has_just_queued(settings: Settings, relay: Sink) -> None:
    # A new ticket's acknowledgement and its agents' mail are queued by one event: with one
    # mail a ticket an hour, the second must be held back (and agents told) within that event.
    bounds = settings.notifications.model_copy(update={"per_ticket_per_hour": 1})
    running = Gateway(settings.model_copy(update={"notifications": bounds}))
    await running.start()
    try:
        await send(running, make_mail("Factura rechazada", sender=f"Bot A <{BOT_A}>"), sender=BOT_A)
        await running.drain()
    finally:
        await running.stop()
    assert [mail.rcpt_tos for mail in relay.received] == [[BOT_A], [AGENTS]]
    assert notices_naming(relay) == [AGENTS], "the agents' own mail is muted, and they are told so"
