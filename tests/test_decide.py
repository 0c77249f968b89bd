"""What a mail means, as a table: parsed mail + classification + what was read → Decision.

No database, no listener: `decide` is pure, so each row compares a whole Decision value.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.desk.decide import (
    Decision,
    Notice,
    Reading,
    Reply,
    UnprocessableMailError,
    decide,
)
from gateway.desk.describe import describe
from gateway.desk.route import NEW, Route
from gateway.model import Address, ParsedMail, Status, TicketRef, TicketView
from gateway.parsing.mail import parse_mail
from gateway.rules.classify import NORMAL, Verdict
from gateway.rules.commands import Proof
from gateway.rules.lifecycle import News
from gateway.rules.recipients import Event
from gateway.rules.signed_addresses import Rating
from gateway.settings import AgentSettings, MailboxSettings, Settings

DESK = "soporte@desk.example"
SETTINGS = Settings(
    mailboxes=[MailboxSettings(address=DESK)],
    agents=AgentSettings(notify_address="agentes@desk.example", addresses=["ana@desk.example"]),
)
CUSTOMER = Address("Cliente", "cliente@empresa.example")
STRANGER = Address("", "otro@externo.example")
AGENT = Address("Ana", "ana@desk.example")
LIMIT = SETTINGS.limits.max_new_participants_per_mail
NONE_LEFT_OUT = {"left_out": [], "left_out_count": 0, "participant_limit": LIMIT}
AUTO = Verdict("auto_reply", "auto_submitted", "Auto-Submitted: auto-replied")
LOOP = Verdict("loop", "own_loop_header", "X-Loop: ticket-gateway")
BOUNCE = Verdict("bounce", "mailer_daemon", "From mailer-daemon@relay.example")
HOURLY = SETTINGS.limits.new_tickets_per_sender_per_hour
CREATED = Notice(Event.TICKET_CREATED, extra=NONE_LEFT_OUT)
CREATED_UNACKNOWLEDGED = Notice(Event.TICKET_CREATED, extra=NONE_LEFT_OUT, suppress=frozenset({"acknowledgement"}))
RUNAWAY = Notice(Event.RUNAWAY_SENDER, extra={"limit": HOURLY})


def ticket(status: Status) -> TicketRef:
    return TicketRef(3, "TK-000003", status)


def view(status: Status) -> TicketView:
    return TicketView(
        id=3, number="TK-000003", subject="Impresora", status=status, priority="medium", type="request",
        mailbox=DESK, country="", brand="", product="", created_at="", requester=CUSTOMER, cc=(),
        unreachable=frozenset(), messages=(),
    )  # fmt: skip


def mail(
    body: str = "Hola, sigue sin funcionar.", sender: Address = CUSTOMER, subject: str = "Re: Impresora"
) -> ParsedMail:
    raw = (
        f"From: {sender.name} <{sender.address}>\r\nTo: {DESK}\r\nSubject: {subject}\r\n"
        f"Message-ID: <m1@empresa.example>\r\n\r\n{body}\r\n"
    ).encode()
    return replace(parse_mail(raw), new_part=body)


def reply_to(status: Status, author: Address = CUSTOMER, **read: object) -> Reading:
    route = Route("reply", ticket(status), "subject token TK-000003")
    return Reading(author, route, view=view(status), **read)  # type: ignore[arg-type]


def customer_told(new: Status, reopened: bool = False, did: tuple[dict[str, str], ...] = ()) -> Notice:
    change = {"status": new, "reopened": reopened, "did": did}
    return Notice(Event.CUSTOMER_REPLY, change, NONE_LEFT_OUT, frozenset({DESK}))


def status_told(new: Status, news: News, incident: str | None = None) -> Notice:
    change = {"status": new, "news": news, "reopened": news is News.REOPENED, "incident": incident}
    return Notice(Event.STATUS_CHANGED, change)


TEXT = "Hola, sigue sin funcionar."
RATING = Rating("TK-000003", 1, True)


def rated_once(reading: Reading) -> Reading:
    """The ticket resolved once: its rating links name resolution 1."""
    return replace(reading, view=replace(view(Status.RESOLVED), resolutions=1))


def rated(recorded: bool) -> Notice:
    return Notice(Event.RATED, {"rating": {"helpful": True, "comment": TEXT, "recorded": recorded}})


ROWS: list[tuple[str, ParsedMail, Verdict, Reading, Decision]] = [
    ("our own mail back", mail(), LOOP, Reading(), Decision("ignore", reason=f"ignored: {LOOP}", verdict=LOOP)),
    ("new mail", mail(), NORMAL, Reading(CUSTOMER, NEW),
     Decision("new_ticket", author=CUSTOMER, reason=NEW.reason, notices=(CREATED,))),
    (
        "new mail, the sender's last ticket under the hourly limit: acknowledged",
        mail(), NORMAL, Reading(CUSTOMER, NEW, opened_this_hour=HOURLY - 1),
        Decision("new_ticket", author=CUSTOMER, reason=NEW.reason, notices=(CREATED,)),
    ),
    (
        "new mail at the hourly limit: no acknowledgement, agents told of a runaway sender",
        mail(), NORMAL, Reading(CUSTOMER, NEW, opened_this_hour=HOURLY),
        Decision("new_ticket", author=CUSTOMER, reason=NEW.reason, notices=(CREATED_UNACKNOWLEDGED, RUNAWAY)),
    ),
    (
        "new mail past the hourly limit: no acknowledgement, agents told only once",
        mail(), NORMAL, Reading(CUSTOMER, NEW, opened_this_hour=HOURLY + 1),
        Decision("new_ticket", author=CUSTOMER, reason=NEW.reason, notices=(CREATED_UNACKNOWLEDGED,)),
    ),
    (
        "customer reply while waiting: back to open, agents told",
        mail(), NORMAL, reply_to(Status.WAITING_CUSTOMER),
        Decision("customer_reply", ticket(Status.WAITING_CUSTOMER), CUSTOMER,
                 reply=Reply("customer", TEXT, Status.WAITING_CUSTOMER, Status.OPEN),
                 notices=(customer_told(Status.OPEN),)),
    ),
    (
        "customer reply while open: no move",
        mail(), NORMAL, reply_to(Status.OPEN),
        Decision("customer_reply", ticket(Status.OPEN), CUSTOMER, reply=Reply("customer", TEXT, Status.OPEN),
                 notices=(customer_told(Status.OPEN),)),
    ),
    (
        "customer reply while in progress: no move",
        mail(), NORMAL, reply_to(Status.IN_PROGRESS),
        Decision("customer_reply", ticket(Status.IN_PROGRESS), CUSTOMER,
                 reply=Reply("customer", TEXT, Status.IN_PROGRESS), notices=(customer_told(Status.IN_PROGRESS),)),
    ),
    (
        "customer reply on a resolved ticket reopens it, and they are told",
        mail(), NORMAL, reply_to(Status.RESOLVED),
        Decision("customer_reply", ticket(Status.RESOLVED), CUSTOMER,
                 reply=Reply("customer", TEXT, Status.RESOLVED, Status.OPEN),
                 notices=(customer_told(Status.OPEN, True, ({"what": "reopened"},)),
                          status_told(Status.OPEN, News.REOPENED))),
    ),
    (
        "customer reply on a closed ticket: a follow-up",
        mail(), NORMAL, reply_to(Status.CLOSED),
        Decision("new_ticket", author=CUSTOMER, follow_up_of=ticket(Status.CLOSED), notices=(CREATED,)),
    ),
    (
        "a follow-up at the hourly limit: no acknowledgement, agents told",
        mail(), NORMAL, reply_to(Status.CLOSED, opened_this_hour=HOURLY),
        Decision("new_ticket", author=CUSTOMER, follow_up_of=ticket(Status.CLOSED),
                 notices=(CREATED_UNACKNOWLEDGED, RUNAWAY)),
    ),
    (
        "customer #resuelto in a reply to our mail: resolved, confirmed",
        mail("#resuelto\nGracias"), NORMAL, reply_to(Status.IN_PROGRESS, customer_proof=Proof.REPLY),
        Decision("customer_reply", ticket(Status.IN_PROGRESS), CUSTOMER,
                 reply=Reply("customer", "Gracias", Status.IN_PROGRESS, Status.RESOLVED),
                 notices=(customer_told(Status.RESOLVED, did=({"what": "resolved"},)),
                          status_told(Status.RESOLVED, News.RESOLVED),
                          Notice(Event.COMMANDS_CONFIRMED, {"status": Status.RESOLVED}))),
    ),
    (
        "customer #prioridad alta, signed: set and confirmed",
        mail("#prioridad alta\nUrgente"), NORMAL, reply_to(Status.OPEN, customer_proof=Proof.SIGNED),
        Decision("customer_reply", ticket(Status.OPEN), CUSTOMER,
                 reply=Reply("customer", "Urgente", Status.OPEN, None, {"priority": "high"}),
                 notices=(customer_told(Status.OPEN, did=({"what": "priority", "value": "high"},)),
                          Notice(Event.COMMANDS_CONFIRMED, {"priority": "high"}))),
    ),
    (
        "customer #resuelto without proof: refused, agents told",
        mail("#resuelto\nGracias"), NORMAL, reply_to(Status.IN_PROGRESS),
        Decision("refuse", ticket(Status.IN_PROGRESS), CUSTOMER,
                 "commands not honoured (#resuelto): not a reply to a mail we sent this address, nor sent to a"
                 " signed address",
                 notices=(Notice(Event.UNVERIFIED_REPLY, {"refused": "commands not honoured (#resuelto): not a reply"
                          " to a mail we sent this address, nor sent to a signed address"}),)),
    ),
    (
        "a stranger writes into a ticket: flagged for agents",
        mail(sender=STRANGER), NORMAL, reply_to(Status.OPEN, author=STRANGER),
        Decision("flag_unverified", ticket(Status.OPEN), STRANGER, "not a participant of this ticket",
                 notices=(Notice(Event.UNVERIFIED_REPLY, {"unverified": True}),)),
    ),
    (
        "agent answers with #estado resuelto",
        mail("Listo, reemplazamos el cartucho.\n#estado resuelto", sender=AGENT), NORMAL,
        reply_to(Status.IN_PROGRESS, author=AGENT, agent_proof="signed reply address"),
        Decision("agent_reply", ticket(Status.IN_PROGRESS), AGENT, "signed reply address",
                 reply=Reply("agent", "Listo, reemplazamos el cartucho.", Status.IN_PROGRESS, Status.RESOLVED,
                             commands=1),
                 notices=(Notice(Event.AGENT_REPLY, addressed=frozenset({DESK}), from_name="Ana",
                                 with_attachments=True),
                          status_told(Status.RESOLVED, News.RESOLVED))),
    ),
    (
        "agent #nota: an internal note, nobody told",
        mail("#nota\nLlamé al cliente.", sender=AGENT), NORMAL,
        reply_to(Status.OPEN, author=AGENT, agent_proof="signed reply address"),
        Decision("agent_reply", ticket(Status.OPEN), AGENT, "signed reply address",
                 reply=Reply("agent", "Llamé al cliente.", Status.OPEN, public=False, internal=True)),
    ),
    (
        "agent mail without proof: kept, the agent told",
        mail("#estado resuelto", sender=AGENT), NORMAL, reply_to(Status.OPEN, author=AGENT),
        Decision("agent_unverified", ticket(Status.OPEN), AGENT, "agent address but not authenticated",
                 notices=(Notice(Event.AGENT_UNVERIFIED),)),
    ),
    (
        "agent reopens a closed ticket by command: rejected",
        mail("#estado abierto", sender=AGENT), NORMAL,
        reply_to(Status.CLOSED, author=AGENT, agent_proof="signed reply address"),
        Decision("reject_commands", ticket(Status.CLOSED), AGENT, "signed reply address",
                 errors=(_closed := {"line": "#estado abierto", "reason": "the ticket is closed and never reopens;"
                         " write to open a new one", "code": "closed_never_reopens", "value": "closed",
                         "options": []},),
                 notices=(Notice(Event.COMMANDS_REJECTED, extra={"errors": [_closed]}),)),
    ),
    (
        "out-of-office into a ticket: kept, nothing sent",
        mail(), AUTO, reply_to(Status.OPEN),
        Decision("keep_automatic", ticket(Status.OPEN), CUSTOMER, "auto_submitted", AUTO),
    ),
    (
        "out-of-office for no ticket: ignored",
        mail(), AUTO, Reading(CUSTOMER, NEW),
        Decision("ignore", author=CUSTOMER, reason=f"ignored: {AUTO}", verdict=AUTO),
    ),
    (
        "the same mail twice",
        mail(), NORMAL, Reading(CUSTOMER, Route("duplicate", ticket(Status.OPEN), "Message-ID <m1> already stored")),
        Decision("duplicate", ticket(Status.OPEN), CUSTOMER, "Message-ID <m1> already stored"),
    ),
    (
        "a bounce of our mail: stop mailing its one recipient",
        mail(subject="Undelivered"), BOUNCE,
        Reading(returned_ticket=ticket(Status.OPEN), returned_to=("cliente@empresa.example",)),
        Decision("bounce", ticket(Status.OPEN), CUSTOMER, "mailer_daemon", BOUNCE,
                 bounced=(("cliente@empresa.example", "undeliverable: Undelivered"),)),
    ),
    (
        "a report on no mail of ours: ignored",
        mail(), BOUNCE, Reading(),
        Decision("ignore", reason=f"ignored: {BOUNCE}, not sent back to a return address of ours for a ticket",
                 verdict=BOUNCE),
    ),
    (
        "Mis tickets abiertos",
        mail(subject="Mis tickets abiertos"), NORMAL, Reading(CUSTOMER, NEW),
        Decision("my_tickets", author=CUSTOMER, only_open=True),
    ),
    (
        "a forged reply address on a ticket: refused",
        mail(), NORMAL, reply_to(Status.OPEN, forged="soporte+r-TK-000003-bad@desk.example"),
        Decision("refuse", ticket(Status.OPEN), CUSTOMER, _forged := "sent to <soporte+r-TK-000003-bad@desk.example>,"
                 " whose signature does not verify: nothing honoured",
                 notices=(Notice(Event.UNVERIFIED_REPLY, {"refused": _forged}),)),
    ),
    (
        "an open address used by a customer: ignored",
        mail(), NORMAL, Reading(CUSTOMER, Route("open", None, "signed open address"), opening="x"),
        Decision("ignore", author=CUSTOMER,
                 reason="ignored: open address used by <cliente@empresa.example>, who is not an agent"),
    ),
    (
        "a rating link, its resolution not rated yet: counted, agents told",
        mail(), NORMAL, rated_once(reply_to(Status.RESOLVED, rating=RATING)),
        Decision("rating", ticket(Status.RESOLVED), CUSTOMER, "rating: helpful", rating=RATING,
                 notices=(rated(recorded=True),)),
    ),
    (
        "a second rating of one resolution: not counted, agents told",
        mail(), NORMAL,
        rated_once(reply_to(Status.RESOLVED, rating=RATING, rated=True)),
        Decision("rating", ticket(Status.RESOLVED), CUSTOMER, "rating ignored: resolution 1 already rated",
                 notices=(rated(recorded=False),)),
    ),
    (
        "a rating link for a resolution the ticket never had: not counted",
        mail(), NORMAL, reply_to(Status.RESOLVED, rating=RATING),
        Decision("rating", ticket(Status.RESOLVED), CUSTOMER, "rating ignored: resolution 1 already rated",
                 notices=(rated(recorded=False),)),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("parsed", "verdict", "reading", "expected"), [row[1:] for row in ROWS],
                         ids=[row[0] for row in ROWS])  # fmt: skip
def test_decision(parsed: ParsedMail, verdict: Verdict, reading: Reading, expected: Decision) -> None:
    assert decide(parsed, verdict, reading, SETTINGS) == expected


def test_a_mail_with_no_sender_cannot_be_decided() -> None:
    with pytest.raises(UnprocessableMailError):
        decide(mail(), NORMAL, Reading(None, NEW), SETTINGS)


@pytest.mark.parametrize(
    ("row", "line"),
    [
        ("customer reply on a resolved ticket reopens it, and they are told",
         "customer reply on TK-000003; status resolved->open;"
         " notify customer_reply to agents+requester+cc, status_changed to requester+cc"),
        ("agent #nota: an internal note, nobody told", "agent note on TK-000003; notify nobody"),
        ("a bounce of our mail: stop mailing its one recipient",
         "bounce on TK-000003 (mailer_daemon); stop mailing cliente@empresa.example"),
        ("new mail", f"new ticket ({NEW.reason}); notify ticket_created to requester+cc+agents"),
        ("a second rating of one resolution: not counted, agents told",
         "rating on TK-000003 (rating ignored: resolution 1 already rated); notify rated to agents"),
        ("new mail at the hourly limit: no acknowledgement, agents told of a runaway sender",
         f"new ticket ({NEW.reason}); notify ticket_created to requester+cc+agents (no acknowledgement),"
         " runaway_sender to agents"),
    ],
)  # fmt: skip
def test_the_decision_in_one_line(row: str, line: str) -> None:
    [(parsed, verdict, reading, _)] = [r[1:] for r in ROWS if r[0] == row]
    assert describe(decide(parsed, verdict, reading, SETTINGS)) == line
