"""What a mail means to the desk, decided in pure code: no I/O, no awaits.

The read step (reading.py) reads once what the decision needs (`Reading`: the ticket the
mail threads into, what its envelope proves); `decide` turns that, the parsed mail and its
classification into a `Decision`; the desk applies it in one transaction and queues the
notifications it names. A Decision is a plain value: tests compare it whole, and
`describe` is the text the log line and `inbound list` show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.desk.route import Route
from gateway.model import Address, ParsedMail, Status, TicketRef, TicketView
from gateway.parsing.forwards import Request
from gateway.rules.classify import Verdict
from gateway.rules.commands import CommandError, Commands, Proof, Role, judge_customer_commands, parse_commands
from gateway.rules.lifecycle import (
    News,
    TransitionError,
    after_agent_reply,
    after_customer_reply,
    change,
    customers_are_told,
    incident_news,
    is_reopening,
    status_news,
)
from gateway.rules.recipients import Event, customer_did, rating_told
from gateway.rules.signed_addresses import Rating, is_open_form
from gateway.rules.subjects import asks_for_my_tickets, asks_for_open_only
from gateway.rules.tickets import Followed, Newcomers, cap_newcomers, copied_people, is_ours
from gateway.settings import Settings

SHOWN_LEFT_OUT = 100  # copied addresses named in a note; the stored message keeps them all

Action = Literal[
    "ignore", "duplicate", "bounce", "my_tickets", "keep_automatic", "refuse", "refuse_opening",
    "open_for_customer", "new_ticket", "rating", "agent_unverified", "reject_commands", "flag_unverified",
    "agent_reply", "customer_reply",
]  # fmt: skip


class UnprocessableMailError(Exception):
    """A mail that can never become a ticket entry as it is (kept raw, marked failed)."""


@dataclass(frozen=True)
class Reading:
    """What the read step found for one mail: all `decide` needs besides the mail itself."""

    author: Address | None = None  # the requester the mail speaks for (From, else the envelope)
    route: Route | None = None  # None: not routed (a loop, a bounce)
    signed: bool = False  # a verified signed address of ours among the envelope recipients
    opening: str = ""  # a verified open address among them
    forged: str = ""  # an address of ours whose signed form we did not sign
    forged_ticket: TicketRef | None = None  # the ticket the forged address names, if known
    returned_ticket: TicketRef | None = None  # a bounce: the ticket of the mail of ours it reports on
    returned_to: tuple[str, ...] = ()  # ...and who that mail went to
    stored_report: TicketRef | None = None  # a bounce already stored (the same report twice)
    view: TicketView | None = None  # the ticket a reply threads into, read once
    rating: Rating | None = None  # a valid rating token for that ticket
    agent_proof: str | None = None  # what authenticates an agent's mail (trust.agent_proof)
    signed_reply: bool = False  # sent to a reply address signed for the author and ticket
    customer_proof: Proof = Proof.NONE  # what says a customer's mail is theirs
    request: Request | None = None  # what a mail to an open address asks for
    opened_this_hour: int = 0  # tickets the author opened in the last hour, where a new one may follow
    followed: Followed | None = None  # a customer's reply to a closed ticket: the context its follow-up keeps
    rated: bool = False  # the resolution the rating token names has its rating already


@dataclass(frozen=True)
class Notice:
    """One event the desk tells of; rules/recipients.py says who hears of it."""

    event: Event
    change: Mapping[str, object] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)
    addressed: frozenset[str] = frozenset()  # the mail's own To and Cc: they have its words
    from_name: str | None = None
    with_attachments: bool = False  # the mail's own files go with it (an agent's reply)
    suppress: frozenset[str] = frozenset()  # templates of the event not sent (a runaway sender's acknowledgement)


@dataclass(frozen=True)
class Reply:
    """What a customer's or an agent's reply does to its ticket."""

    by: Literal["customer", "agent"]
    text: str  # the new part as stored: without its command lines
    old: Status
    wanted: Status | None = None  # the status written (None: none; it may equal `old`)
    fields: Mapping[str, object] = field(default_factory=dict)  # other fields the commands set
    cc_add: tuple[Address, ...] = ()
    cc_remove: tuple[str, ...] = ()
    public: bool = True  # an agent's public answer (else a note or commands only)
    internal: bool = False  # an agent's #nota
    note: str | None = None  # on the stored message
    commands: int = 0  # how many fields an agent's commands change

    @property
    def new(self) -> Status:
        return self.wanted or self.old


@dataclass(frozen=True)
class Decision:
    action: Action
    ticket: TicketRef | None = None
    author: Address | None = None
    reason: str = ""  # why: the rule, the route, the refusal
    verdict: Verdict | None = None
    follow_up_of: TicketRef | None = None  # a new ticket following a closed one
    bounced: tuple[tuple[str, str], ...] = ()  # (address, diagnostic) no longer mailed
    errors: tuple[Mapping[str, object], ...] = ()  # an agent's bad command lines
    only_open: bool = False  # the list of tickets: unfinished ones only
    rating: Rating | None = None  # the rating to record (None: a refused one, told as such)
    reply: Reply | None = None
    notices: tuple[Notice, ...] = ()  # in the order they are queued

    @property
    def ignored(self) -> bool:
        return self.action == "ignore"


def decide(mail: ParsedMail, verdict: Verdict, reading: Reading, settings: Settings) -> Decision:
    """What the mail does; pure. The order is the order of trust: our own mail coming back,
    reports on our mail, then what the envelope proves, then the headers' word."""
    if verdict.kind == "loop":
        return Decision("ignore", reason=f"ignored: {verdict}", verdict=verdict)
    if verdict.kind == "bounce":
        return _bounce(mail, verdict, reading)
    author = reading.author
    if author is None:
        raise UnprocessableMailError("no sender address: neither a From header nor an envelope sender")
    automatic = verdict.kind in ("auto_reply", "bulk")
    if asks_for_my_tickets(mail.subject) and not automatic and not reading.signed and not reading.opening:
        return Decision("my_tickets", author=author, only_open=asks_for_open_only(mail.subject))
    route = reading.route
    assert route is not None, "a mail that is neither a loop nor a bounce is routed"
    if route.kind == "duplicate":
        return Decision("duplicate", route.ticket, author, route.reason)
    if automatic:  # never a ticket, a notification or a status change
        if route.ticket is None:
            return Decision("ignore", author=author, reason=f"ignored: {verdict}", verdict=verdict)
        return Decision("keep_automatic", route.ticket, author, verdict.rule, verdict)
    if reading.forged:
        return _unsigned(route.ticket or reading.forged_ticket, author, reading.forged, settings)
    if route.kind == "open":
        if not settings.agents.is_agent(author.address):
            why = f"ignored: open address used by <{author.address}>, who is not an agent"
            return Decision("ignore", author=author, reason=why)
        return Decision("open_for_customer", author=author, reason=route.reason)
    if route.ticket is None:
        return new_ticket(mail, author, reading, settings, route.reason)
    return _reply(mail, route.ticket, author, reading, settings)


def new_ticket(
    mail: ParsedMail, author: Address, reading: Reading, settings: Settings, reason: str = "",
    follow_up_of: TicketRef | None = None,
) -> Decision:  # fmt: skip
    """A new ticket, and who hears of it: past the hourly limit of new tickets per sender the
    author gets no acknowledgement (an autoresponder writing a new mail each time converges),
    and the agents are told once, by the first ticket over the limit."""
    newcomers = newcomers_of(mail, author, frozenset(), settings)
    limit = settings.limits.new_tickets_per_sender_per_hour
    over_limit = reading.opened_this_hour >= limit
    muted = frozenset({"acknowledgement"}) if over_limit else frozenset()
    created = Notice(Event.TICKET_CREATED, extra=left_out(newcomers, settings), suppress=muted)
    runaway = Notice(Event.RUNAWAY_SENDER, extra={"limit": limit}) if reading.opened_this_hour == limit else None
    return Decision("new_ticket", author=author, reason=reason, follow_up_of=follow_up_of,
                    notices=_present(created, runaway))  # fmt: skip


def _bounce(mail: ParsedMail, verdict: Verdict, reading: Reading) -> Decision:
    """A report on a mail of ours: stop mailing those it says failed (a report without a
    readable status, for a mail to one person, is about that one)."""
    if reading.returned_ticket is None:
        why = f"ignored: {verdict}, not sent back to a return address of ours for a ticket"
        return Decision("ignore", reason=why, verdict=verdict)
    if reading.stored_report is not None:
        return Decision("duplicate", reading.stored_report, reason=f"Message-ID <{mail.message_id}> already stored")
    recipients = reading.returned_to
    failures = (
        [(f.recipient, f"{f.status} {f.diagnostic}".strip()) for f in mail.report.failures] if mail.report else []
    )
    if not failures and len(recipients) == 1:
        failures = [(recipients[0], f"undeliverable: {mail.subject}".strip())]
    failed = tuple((address, diagnostic) for address, diagnostic in failures if address in recipients)
    sender = mail.sender or Address("", "")
    return Decision("bounce", reading.returned_ticket, sender, verdict.rule, verdict, bounced=failed)


def _unsigned(ticket: TicketRef | None, author: Address, address: str, settings: Settings) -> Decision:
    """Mail to an address we did not sign changes nothing: an internal entry on the ticket
    it names (or routes to), else it is set aside raw with the reason."""
    reason = f"sent to <{address}>, whose signature does not verify: nothing honoured"
    if is_open_form(address) and settings.agents.is_agent(author.address):
        return Decision("refuse_opening", author=author, reason=reason)
    if ticket is None:
        return Decision("ignore", author=author, reason=f"ignored: {reason}, for no known ticket")
    return refusal(ticket, author, reason)


def refusal(ticket: TicketRef, author: Address, reason: str) -> Decision:
    """A mail that may not act on the ticket: kept as an internal entry saying why, agents
    told; no status change, no participant, nothing to the customer or anyone copied."""
    return Decision("refuse", ticket, author, reason, notices=(Notice(Event.UNVERIFIED_REPLY, {"refused": reason}),))


def _reply(mail: ParsedMail, ticket: TicketRef, author: Address, reading: Reading, settings: Settings) -> Decision:
    if reading.rating is not None:
        return _rating(mail, ticket, author, reading.rating, reading)
    if settings.agents.is_agent(author.address):
        return _agent_reply(mail, ticket, author, reading, settings)
    if ticket.status == Status.CLOSED:
        return new_ticket(mail, author, reading, settings, follow_up_of=ticket)
    return _customer_reply(mail, ticket, author, reading, settings)


def _rating(mail: ParsedMail, ticket: TicketRef, author: Address, rating: Rating, reading: Reading) -> Decision:
    """One rating counts per resolution; a second one, or one for a resolution the ticket
    never had, is kept as a system entry. Agents hear of it either way, bounded like all
    our mail."""
    view = reading.view
    assert view is not None, "a reply's ticket is read before deciding"
    counted = 0 < rating.resolution <= view.resolutions and not reading.rated
    verdict = "helpful" if rating.helpful else "not helpful"
    note = f"rating: {verdict}" if counted else f"rating ignored: resolution {rating.resolution} already rated"
    told = Notice(Event.RATED, {"rating": rating_told(rating.helpful, mail.new_part, counted)})
    return Decision("rating", ticket, author, note, rating=rating if counted else None, notices=(told,))


def _customer_reply(
    mail: ParsedMail, ticket: TicketRef, author: Address, reading: Reading, settings: Settings
) -> Decision:
    view = reading.view
    assert view is not None, "a reply's ticket is read before deciding"
    participants = frozenset({view.requester.address, *(person.address for person in view.cc)})
    policy = settings.tickets.unknown_sender_policy
    if author.address not in participants and policy == "new_ticket":
        return new_ticket(mail, author, reading, settings, "not a participant")
    if author.address not in participants and policy == "flag":
        told = Notice(Event.UNVERIFIED_REPLY, {"unverified": True})
        return Decision("flag_unverified", ticket, author, "not a participant of this ticket", notices=(told,))
    judged = judge_customer_commands(mail.new_part, _role(author, view, participants), reading.customer_proof)
    if judged.refused:
        return refusal(ticket, author, judged.refused)
    commands = judged.honoured
    newcomers = newcomers_of(mail, author, participants, settings)
    old = Status(view.status)
    asked = commands.changes.get("status")
    wanted = Status(asked) if asked else after_customer_reply(old, settings.tickets.customer_reply_moves)
    fields = _field_changes(commands)
    new = wanted or old
    confirmed: dict[str, object] = {key: value for key, value in fields.items() if getattr(view, key, None) != value}
    if "status" in commands.changes and new is not old:
        confirmed["status"] = new
    did = customer_did(confirmed, is_reopening(old, new))  # named in the agents' notification
    told = Notice(Event.CUSTOMER_REPLY, {"status": new, "reopened": is_reopening(old, new), "did": did},
                  left_out(newcomers, settings), addressed_by(mail))  # fmt: skip
    status = status_notice(view, old, new, settings)
    # To the requester even though they wrote it: a forgery shows at once.
    confirm = Notice(Event.COMMANDS_CONFIRMED, confirmed) if confirmed else None
    reply = Reply("customer", commands.text, old, wanted, fields, newcomers.added,
                  note=left_out_note(newcomers, settings))  # fmt: skip
    return Decision("customer_reply", ticket, author, reply=reply, notices=_present(told, status, confirm))


def _agent_reply(
    mail: ParsedMail, ticket: TicketRef, author: Address, reading: Reading, settings: Settings
) -> Decision:
    if reading.agent_proof is None:
        # Told, so nothing an agent writes vanishes: the notice goes to the From address,
        # so a forger's mail reaches the agent it names, never the customer.
        told = (Notice(Event.AGENT_UNVERIFIED),)
        return Decision("agent_unverified", ticket, author, "agent address but not authenticated", notices=told)
    view = reading.view
    assert view is not None, "a reply's ticket is read before deciding"
    text = mail.new_part
    commands = parse_commands(text, agent=True, incident_values=settings.tickets.incident_values)
    old = Status(view.status)
    errors = [error.as_dict() for error in commands.errors]
    wanted = _status_asked(commands, old, errors)
    why = "one of our own addresses: never a participant"
    ours = [address for address in commands.cc_add if is_ours(address, settings.our_addresses)]
    errors += [CommandError(_written_line(text, a), why, "our_address", a).as_dict() for a in ours]
    if errors:
        told = (Notice(Event.COMMANDS_REJECTED, extra={"errors": errors}),)
        return Decision("reject_commands", ticket, author, reading.agent_proof, errors=tuple(errors), notices=told)
    incident = incident_news(view.incident, commands.changes.get("incident"))
    public = bool(commands.text.strip()) and not commands.internal
    answer = None
    if public:
        wanted = wanted or after_agent_reply(old, None, settings.tickets.agent_moves)
        answer = Notice(Event.AGENT_REPLY, addressed=addressed_by(mail), from_name=_from_name(author, view, settings),
                        with_attachments=True)  # fmt: skip
    status = status_notice(view, old, wanted or old, settings, replied=public, incident=incident)
    reply = Reply(
        "agent", commands.text if public else (commands.text or text), old, wanted, _field_changes(commands),
        tuple(Address("", a) for a in commands.cc_add), commands.cc_remove, public, commands.internal,
        commands=len(commands.changes),
    )  # fmt: skip
    return Decision("agent_reply", ticket, author, reading.agent_proof, reply=reply, notices=_present(answer, status))


def status_notice(
    view: TicketView, old: Status, new: Status, settings: Settings, *, replied: bool = False,
    incident: str | None = None,
) -> Notice | None:  # fmt: skip
    """One mail to the customer naming what changed (lifecycle decides what is news), in the
    words of the ticket's mailbox: a change they would read as no change is not told.
    `replied`: the same mail already sent them support's reply."""
    news = status_news(old, new, replied=replied)
    language = (settings.mailbox_for(view.mailbox) or settings.mailboxes[0]).language
    if news is not None and not customers_are_told(old, new, lambda s: settings.label(s, language)):
        news = None
    if news is None and incident is None:
        return None
    details = {"status": new, "news": news, "reopened": news is News.REOPENED, "incident": incident}
    return Notice(Event.STATUS_CHANGED, details)


def newcomers_of(mail: ParsedMail, author: Address, known: frozenset[str], settings: Settings) -> Newcomers:
    copied = copied_people(mail, settings.our_addresses, exclude=author.address)
    return cap_newcomers(copied, known, settings.limits.max_new_participants_per_mail)


def left_out(newcomers: Newcomers, settings: Settings) -> dict[str, object]:
    """What the agents' notification says of copied people who were not added."""
    addresses = [person.address for person in newcomers.left_out]
    return {"left_out": addresses[:SHOWN_LEFT_OUT], "left_out_count": len(addresses),
            "participant_limit": settings.limits.max_new_participants_per_mail}  # fmt: skip


def left_out_note(newcomers: Newcomers, settings: Settings) -> str | None:
    if not newcomers.left_out:
        return None
    shown = ", ".join(person.address for person in newcomers.left_out[:SHOWN_LEFT_OUT])
    more = len(newcomers.left_out) - SHOWN_LEFT_OUT
    rest = f" and {more} more (all in this message's To/Cc)" if more > 0 else ""
    limit = settings.limits.max_new_participants_per_mail
    return f"{len(newcomers.left_out)} copied address(es) not added (at most {limit} per mail): {shown}{rest}"


def addressed_by(mail: ParsedMail) -> frozenset[str]:
    """Who a mail went to directly (To and Cc): they need no copy of its words from us."""
    return frozenset(person.address.lower() for person in (*mail.to, *mail.cc))


def _present(*notices: Notice | None) -> tuple[Notice, ...]:
    return tuple(notice for notice in notices if notice is not None)


def _role(author: Address, view: TicketView, participants: frozenset[str]) -> Role:
    if author.address == view.requester.address:
        return Role.REQUESTER
    return Role.CC if author.address in participants else Role.OTHER


def _status_asked(commands: Commands, old: Status, errors: list[dict[str, object]]) -> Status | None:
    if "status" not in commands.changes:
        return None
    try:
        return change(old, Status(commands.changes["status"]))
    except TransitionError as error:
        line = commands.written.get("status", f"#estado {commands.changes['status']}")
        errors.append(CommandError(line, str(error), "closed_never_reopens", str(old)).as_dict())
        return None


def _written_line(text: str, address: str) -> str:
    """The agent's own #cc line naming `address`, to quote back to them."""
    lines = (line.strip() for line in text.splitlines())
    return next((line for line in lines if line.startswith("#") and address in line.lower()), f"#cc +{address}")


def _field_changes(commands: Commands) -> dict[str, object]:
    return {key: value for key, value in commands.changes.items() if key != "status"}


def _from_name(author: Address, view: TicketView, settings: Settings) -> str | None:
    # The agent's name may show; their own address never does (From is the mailbox).
    mailbox_name = (settings.mailbox_for(view.mailbox) or settings.mailboxes[0]).name
    return f"{author.name} · {mailbox_name}" if author.name and mailbox_name else (author.name or None)
