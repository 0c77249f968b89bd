"""Who hears of what: the one table of notifications, pure and free of I/O.

Every rule names an event, the template to render, who it goes to and who is copied.
`plan` turns an event on a ticket into the mails to write; it never addresses anybody
their own message, our own mailboxes (in any plus form), or an address that bounced on
this ticket. `cap_recipients` bounds how many people one mail goes to.
`allow` bounds them: however the other side answers, no address hears of a ticket more
than a set number of times an hour, so every loop converges (agents are told once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gateway.model import Address
from gateway.rules.tickets import is_ours


class Event(StrEnum):
    TICKET_CREATED = "ticket_created"
    CUSTOMER_REPLY = "customer_reply"
    AGENT_REPLY = "agent_reply"
    STATUS_CHANGED = "status_changed"  # resolved, closed, or reopened
    COMMANDS_REJECTED = "commands_rejected"  # an agent's reply had a bad command line
    UNVERIFIED_REPLY = "unverified_reply"  # someone not on the ticket wrote into it
    RUNAWAY_SENDER = "runaway_sender"  # a sender passed the hourly limit of new tickets
    MY_TICKETS = "my_tickets"  # a customer asked for the list of their tickets
    NOTIFICATIONS_MUTED = "notifications_muted"  # an address passed its hourly bound on a ticket
    # A customer command changed the ticket: confirmed to the requester even when they wrote
    # it, so a forged From is seen at once by the person it impersonates.
    COMMANDS_CONFIRMED = "commands_confirmed"
    RATED = "rated"  # a customer rated a resolution (or tried to rate it a second time)
    # An agent's mail with no proof (fresh, not a reply to a notification): kept as an internal
    # note, and the agent told so, and how to answer instead; nothing else hears of it.
    AGENT_UNVERIFIED = "agent_unverified"
    # Mail to an agent's open address that opened nothing (a bad signature, no customer named,
    # a forward of our own mail): the agent who wrote is told why.
    OPEN_REFUSED = "open_refused"


class Audience(StrEnum):
    REQUESTER = "requester"
    CC = "cc"  # every CC participant
    AGENTS = "agents"  # the agents' notification address
    AUTHOR = "author"  # whoever wrote the triggering mail, and only them
    NOBODY = "nobody"


# RFC 3834 §5: an acknowledgement answers a person's mail; everything else we generate.
AUTO_REPLIED = "auto-replied"
AUTO_GENERATED = "auto-generated"
MUTED_NOTICE = "notifications_muted"  # the template of the notice to agents: bounded on its own
RATING_COMMENT_LINES = 5  # a rating's comment as the notice's headline quotes it
RATING_COMMENT_CHARS = 300


@dataclass(frozen=True)
class Rule:
    event: Event
    template: str
    to: Audience
    cc: Audience
    auto_submitted: str
    for_agents: bool = False
    only_if_copying_participants: bool = False
    answers_author: bool = False  # an acknowledgement is for the author; it is not their mail back
    # The mail passes on the triggering mail's own words: whoever that mail already went to
    # (its To and Cc) read them there and gets no second copy.
    relays_trigger: bool = False


RULES: tuple[Rule, ...] = (
    Rule(Event.TICKET_CREATED, "acknowledgement", Audience.REQUESTER, Audience.CC, AUTO_REPLIED, answers_author=True),
    Rule(Event.TICKET_CREATED, "agent_new_ticket", Audience.AGENTS, Audience.NOBODY, AUTO_GENERATED, for_agents=True),
    Rule(Event.CUSTOMER_REPLY, "customer_reply", Audience.AGENTS, Audience.NOBODY, AUTO_GENERATED, for_agents=True),
    Rule(
        Event.CUSTOMER_REPLY,
        "customer_reply",
        Audience.REQUESTER,
        Audience.CC,
        AUTO_GENERATED,
        only_if_copying_participants=True,
        relays_trigger=True,
    ),
    Rule(Event.AGENT_REPLY, "agent_reply", Audience.REQUESTER, Audience.CC, AUTO_GENERATED, relays_trigger=True),
    Rule(Event.STATUS_CHANGED, "status_changed", Audience.REQUESTER, Audience.CC, AUTO_GENERATED),
    Rule(Event.UNVERIFIED_REPLY, "customer_reply", Audience.AGENTS, Audience.NOBODY, AUTO_GENERATED, for_agents=True),
    Rule(Event.RUNAWAY_SENDER, "runaway_sender", Audience.AGENTS, Audience.NOBODY, AUTO_GENERATED, for_agents=True),
    Rule(
        Event.COMMANDS_REJECTED,
        "commands_rejected",
        Audience.AUTHOR,
        Audience.NOBODY,
        AUTO_REPLIED,
        for_agents=True,
        answers_author=True,
    ),
    Rule(Event.MY_TICKETS, "my_tickets", Audience.AUTHOR, Audience.NOBODY, AUTO_REPLIED, answers_author=True),
    Rule(
        Event.COMMANDS_CONFIRMED,
        "commands_confirmed",
        Audience.REQUESTER,
        Audience.NOBODY,
        AUTO_REPLIED,
        answers_author=True,
    ),
    Rule(Event.RATED, "agent_rating", Audience.AGENTS, Audience.NOBODY, AUTO_GENERATED, for_agents=True),
    Rule(
        Event.AGENT_UNVERIFIED,
        "agent_unverified",
        Audience.AUTHOR,
        Audience.NOBODY,
        AUTO_REPLIED,
        for_agents=True,
        answers_author=True,
    ),
    Rule(Event.OPEN_REFUSED, "open_refused", Audience.AUTHOR, Audience.NOBODY, AUTO_REPLIED, True, answers_author=True),
    Rule(Event.NOTIFICATIONS_MUTED, MUTED_NOTICE, Audience.AGENTS, Audience.NOBODY, AUTO_GENERATED, for_agents=True),
)


@dataclass(frozen=True)
class People:
    """Everyone a ticket could write to, as the domain sees them."""

    author: Address  # whoever wrote the mail that caused the event
    requester: Address
    cc: tuple[Address, ...]
    agents: tuple[Address, ...]
    ours: frozenset[str]  # our own mailboxes: never a recipient
    unreachable: frozenset[str] = frozenset()  # bounced on this ticket
    # The To and Cc of the triggering mail, lower case: they received its words directly.
    # A header proves nothing: at worst a participant's forged Cc spares someone a copy of
    # that participant's own words, never of ours (acknowledgements, status mail).
    addressed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlannedMail:
    template: str
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    auto_submitted: str
    for_agents: bool


def plan(event: Event, people: People, copy_participants: bool) -> list[PlannedMail]:
    """The mails an event causes."""
    planned = []
    for rule in RULES:
        if rule.event is not event or (rule.only_if_copying_participants and not copy_participants):
            continue
        excluded = set(people.unreachable)
        if not rule.answers_author:
            excluded.add(people.author.address)
        if rule.relays_trigger:
            excluded |= people.addressed  # addresses are lower case (parse.Address)
        to = _reachable(_audience(rule.to, people), excluded, people.ours)
        cc = _reachable(_audience(rule.cc, people), excluded | {person.address for person in to}, people.ours)
        if not to and cc:  # the requester wrote it: the first CC becomes the addressee
            to, cc = cc[:1], cc[1:]
        if to:
            planned.append(PlannedMail(rule.template, to, cc, rule.auto_submitted, rule.for_agents))
    return planned


def _audience(audience: Audience, people: People) -> tuple[Address, ...]:
    if audience is Audience.REQUESTER:
        return (people.requester,)
    if audience is Audience.CC:
        return people.cc
    if audience is Audience.AGENTS:
        return people.agents
    if audience is Audience.AUTHOR:
        return (people.author,)
    return ()


def _reachable(candidates: tuple[Address, ...], excluded: set[str], ours: frozenset[str]) -> tuple[Address, ...]:
    seen: dict[str, Address] = {}
    for person in candidates:
        if person.address not in excluded and not is_ours(person.address, ours):
            seen.setdefault(person.address, person)
    return tuple(seen.values())


def cap_recipients(mail: PlannedMail, limit: int) -> tuple[PlannedMail, tuple[str, ...]]:
    """The mail to at most `limit` people (its addressees first, then CC in order), and the
    addresses left out: however many participants a ticket gathers, one notification never
    becomes a bulk mailing."""
    to = mail.to[:limit]
    cc = mail.cc[: max(limit - len(to), 0)]
    left_out = tuple(person.address for person in (*mail.to[limit:], *mail.cc[len(cc) :]))
    return replace(mail, to=to, cc=cc), left_out


# -- what agents are told happened -----------------------------------------------------------


def customer_did(changed: Mapping[str, object], reopened: bool) -> tuple[dict[str, str], ...]:
    """What a customer's mail did to the ticket, for the agents' notification to name
    ("María marcó el ticket como resuelto"), in the order agents read it: `changed` is what
    their commands changed (status, priority), `reopened` a reply that reopened it."""
    did: list[dict[str, str]] = []
    status = str(changed.get("status", ""))
    if status in ("resolved", "closed"):
        did.append({"what": status})
    if changed.get("priority"):
        did.append({"what": "priority", "value": str(changed["priority"])})
    if reopened and not status:
        did.append({"what": "reopened"})
    return tuple(did)


def rating_told(helpful: bool, comment: str, recorded: bool) -> dict[str, object]:
    """What the agents' rating notice says: the answer, the comment (its first lines: the
    whole of it is in the ticket), and whether it counted (a second rating of one resolution
    does not)."""
    lines = [line.strip() for line in comment.strip().splitlines() if line.strip()]
    shown = " ".join(lines[:RATING_COMMENT_LINES])
    if len(shown) > RATING_COMMENT_CHARS:
        shown = shown[:RATING_COMMENT_CHARS].rstrip() + "…"
    elif len(lines) > RATING_COMMENT_LINES:
        shown += " …"
    return {"helpful": helpful, "comment": shown, "recorded": recorded}


def entry_kind(visibility: str, note: str | None) -> str:
    """How an agent's notification shows a conversation entry: "message" (what the customer
    and the agents wrote to each other), or a marked "note", "rejected" reply or "system"
    entry, never passed off as conversation."""
    if visibility == "public":
        return "message"
    if visibility == "internal" and (note or "").startswith("rejected:"):
        return "rejected"
    return "note" if visibility == "internal" else "system"


# -- bounds on automatic mail ---------------------------------------------------------------


@dataclass(frozen=True)
class MailLimits:
    """How much mail one ticket may cause in the window (an hour; see settings.NotificationSettings)."""

    per_recipient: int
    per_ticket: int
    notices: int  # notices to agents about muted addresses


@dataclass(frozen=True)
class RecentMail:
    """What went out about one ticket within the window."""

    to_address: Counter[str] = field(default_factory=Counter)  # mails per recipient, lower case
    mails: int = 0  # mails in all, notices included
    notices: int = 0  # of which notices to agents
    muted: frozenset[str] = frozenset()  # addresses agents were already told of

    def told(self, muted: Iterable[str]) -> RecentMail:
        """The window once agents are told of `muted` (recorded in the ticket's history)."""
        return replace(self, muted=self.muted | frozenset(muted))

    def with_mail(self, template: str, recipients: Iterable[str]) -> RecentMail:
        """The window with one more mail queued: what `tally` counts of its outbox row."""
        to_address = self.to_address + Counter(recipient.lower() for recipient in recipients)
        notices = self.notices + (template == MUTED_NOTICE)
        return replace(self, to_address=to_address, mails=self.mails + 1, notices=notices)


@dataclass(frozen=True)
class Allowance:
    kept: tuple[str, ...]
    muted: tuple[str, ...]
    newly_muted: tuple[str, ...]  # muted now and not before in the window: recorded on the ticket
    tell_agents: bool  # one notice naming newly_muted (itself bounded by limits.notices)


def tally(sent: Iterable[tuple[int, str, str]]) -> tuple[Counter[str], int, int]:
    """(mails per recipient, mails, notices) from (outbox id, template, recipient) rows."""
    to_address: Counter[str] = Counter()
    mails: set[int] = set()
    notices: set[int] = set()
    for outbox_id, template, recipient in sent:
        to_address[recipient.lower()] += 1
        mails.add(outbox_id)
        if template == MUTED_NOTICE:
            notices.add(outbox_id)
    return to_address, len(mails), len(notices)


def allow(recipients: Sequence[str], recent: RecentMail, limits: MailLimits) -> Allowance:
    """Which recipients of one more mail about a ticket still get it, and whether agents are told."""
    ticket_full = recent.mails >= limits.per_ticket
    kept, muted = [], []
    for address in dict.fromkeys(recipient.lower() for recipient in recipients):
        if ticket_full or recent.to_address[address] >= limits.per_recipient:
            muted.append(address)
        else:
            kept.append(address)
    newly = tuple(address for address in muted if address not in recent.muted)
    return Allowance(tuple(kept), tuple(muted), newly, bool(newly) and recent.notices < limits.notices)


def keep_only(mail: PlannedMail, kept: Sequence[str]) -> PlannedMail | None:
    """The mail without its muted recipients; None when nobody is left."""
    wanted = set(kept)
    to = tuple(person for person in mail.to if person.address.lower() in wanted)
    cc = tuple(person for person in mail.cc if person.address.lower() in wanted)
    if not to and cc:  # as plan() does: the first remaining CC becomes the addressee
        to, cc = cc[:1], cc[1:]
    return replace(mail, to=to, cc=cc) if to else None


def audiences(event: Event) -> tuple[str, ...]:
    """Who may hear of an event, as the table names them ("agents", "requester", "cc")."""
    named = (audience for rule in RULES if rule.event is event for audience in (rule.to, rule.cc))
    return tuple(dict.fromkeys(str(audience) for audience in named if audience is not Audience.NOBODY))
