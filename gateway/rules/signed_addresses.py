"""Signed tokens carried in addresses: agent reply addresses and rating links.

Pure code given the secret. An agent reply address `soporte.latam+TK-000123.<mac>@…` is
bound to the ticket and to the address its notification went to, so only someone who
received that notification can use it; a rating address
`soporte.latam+rate.TK-000123.2.yes.<mac>@…` names the ticket, the resolution it rates
(once per resolution) and the answer. A return address `soporte.latam+b.<token>.<mac>@…`
is the envelope sender of one mail we sent (VERP): the token is its Message-ID's first
part, so a delivery report that comes back to it names the mail, and so its recipients,
and nothing a stranger writes can. An open address `soporte.latam+abrir.<agent>.<mac>@…` lets
an agent open a ticket for a customer: `<agent>` is a short id of the address it is bound
to (the one the notification carrying it went to: the agents' address, or one agent's),
the MAC binds the two, so only who received that notification can use it. Any other form,
or a wrong MAC, is no token, and `verifies` tells the pipeline so: mail to a plus form of
ours we did not sign acts on nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway.rules.subject_token import ANY_NUMBER

MAC_LENGTH = 16  # hex characters: 64 bits, plenty against guessing by mail
# Case-insensitive: some MTAs change the case of local parts.
REPLY_TAG = re.compile(rf"^(?P<number>{ANY_NUMBER})\.(?P<mac>[0-9a-f]{{16}})$", re.IGNORECASE)
BOUNCE_TAG = re.compile(r"^b\.(?P<token>[0-9a-f]{16})\.(?P<mac>[0-9a-f]{16})$", re.IGNORECASE)
OPEN_TAG = re.compile(r"^abrir\.(?P<agent>[0-9a-f]{8})\.(?P<mac>[0-9a-f]{16})$", re.IGNORECASE)
RATING_TAG = re.compile(
    rf"^rate\.(?P<number>{ANY_NUMBER})\.(?P<round>\d+)\.(?P<answer>yes|no)\.(?P<mac>[0-9a-f]{{16}})$",
    re.IGNORECASE,
)

# The forms of tag we sign or reserve: `rate.…`, `abrir.…` (open addresses), a ticket
# number (reply addresses), `b.…`
# (bounce addresses), or anything ending in a MAC. Other tags (`ventas+peru@`) are plain
# sub-addressing (RFC 5233): they route to the mailbox and prove nothing.
SIGNED_LOOKING = re.compile(rf"^(rate|b|abrir)\.|^{ANY_NUMBER}(\.|$)|\.[0-9a-f]{{16}}$", re.IGNORECASE)


@dataclass(frozen=True)
class Rating:
    number: str
    resolution: int
    helpful: bool


@dataclass(frozen=True)
class SignedTag:
    """What a verified signed address names: a ticket number (reply and rating addresses),
    the token of one mail we sent (a return address; the outbox knows its ticket), or no
    ticket at all (an open address: a new ticket for a customer, opened by an agent)."""

    kind: Literal["reply", "rating", "return", "open"]
    number: str = ""
    token: str = ""


class Signer:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, *parts: str) -> str:
        message = "\x1f".join(("ticket-gateway", *parts)).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:MAC_LENGTH]

    def reply_address(self, mailbox: str, number: str, bound_to: str) -> str:
        local, _, domain = mailbox.partition("@")
        return f"{local}+{number}.{self._mac('reply', number, bound_to.lower())}@{domain}"

    def reply_address_verifies(self, address: str, number: str, bound_to: str) -> bool:
        match = REPLY_TAG.match(_tag(address))
        if match is None or match["number"].upper() != number:
            return False
        return hmac.compare_digest(match["mac"].lower(), self._mac("reply", number, bound_to.lower()))

    def rating_address(self, mailbox: str, number: str, resolution: int, helpful: bool) -> str:
        local, _, domain = mailbox.partition("@")
        answer = "yes" if helpful else "no"
        mac = self._mac("rate", number, str(resolution), answer)
        return f"{local}+rate.{number}.{resolution}.{answer}.{mac}@{domain}"

    def rating_in(self, address: str) -> Rating | None:
        match = RATING_TAG.match(_tag(address))
        if match is None:
            return None
        number, answer = match["number"].upper(), match["answer"].lower()
        expected = self._mac("rate", number, match["round"], answer)
        if not hmac.compare_digest(match["mac"].lower(), expected):
            return None
        return Rating(number, int(match["round"]), answer == "yes")

    def bounce_address(self, mailbox: str, token: str) -> str:
        local, _, domain = mailbox.partition("@")
        return f"{local}+b.{token}.{self._mac('bounce', token.lower())}@{domain}"

    def bounce_token_in(self, address: str) -> str | None:
        """The token of a return address we signed, or None."""
        match = BOUNCE_TAG.match(_tag(address))
        if match is None:
            return None
        token = match["token"].lower()
        return token if hmac.compare_digest(match["mac"].lower(), self._mac("bounce", token)) else None

    def open_address(self, mailbox: str, bound_to: str) -> str:
        local, _, domain = mailbox.partition("@")
        agent = agent_id(bound_to)
        return f"{local}+abrir.{agent}.{self._mac('open', agent, bound_to.lower())}@{domain}"

    def open_address_verifies(self, address: str, bound_to: Iterable[str]) -> bool:
        """An open address we signed for one of `bound_to` (its id says which)."""
        match = OPEN_TAG.match(_tag(address))
        if match is None:
            return False
        agent = match["agent"].lower()
        return any(
            agent == agent_id(who) and hmac.compare_digest(match["mac"].lower(), self._mac("open", agent, who.lower()))
            for who in bound_to
            if who
        )

    def verifies(self, address: str, bound_to: Iterable[str]) -> bool:
        """A plus tag we signed: a rating, a return address, or a reply address bound to one of `bound_to`."""
        return self.signed_tag(address, bound_to) is not None

    def signed_tag(self, address: str, bound_to: Iterable[str]) -> SignedTag | None:
        """What `address` names if we signed it (a reply address only when bound to one of
        `bound_to`), else None: the ticket a mail to it belongs to, whatever its headers say."""
        rating = self.rating_in(address)
        if rating is not None:
            return SignedTag("rating", number=rating.number)
        token = self.bounce_token_in(address)
        if token is not None:
            return SignedTag("return", token=token)
        bound_to = tuple(bound_to)
        if self.open_address_verifies(address, bound_to):
            return SignedTag("open")
        match = REPLY_TAG.match(_tag(address))
        number = match["number"].upper() if match else ""
        if number and any(self.reply_address_verifies(address, number, who) for who in bound_to):
            return SignedTag("reply", number=number)
        return None


def agent_id(address: str) -> str:
    """A short stable id of an address that fits a local part; not secret (the MAC is)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:8]


def is_open_form(address: str) -> bool:
    """An address with the form of an open address, signed or not."""
    return _tag(address).lower().startswith("abrir.")


def message_token(message_id: str) -> str:
    """The random part our Message-IDs begin with (render.py), which a return address carries."""
    return message_id.partition(".")[0]


def looks_signed(address: str) -> bool:
    """An address whose tag has the form of one we sign: then only a valid MAC lets it act."""
    return SIGNED_LOOKING.search(_tag(address)) is not None


def plus_tag(address: str) -> str:
    """The part after '+' in the local part, or '' (`soporte+rate.…@x` → `rate.…`)."""
    return _tag(address)


def _tag(address: str) -> str:
    """The part after '+' in the local part, or ''."""
    local = address.strip().strip("<>").rpartition("@")[0]
    return local.partition("+")[2]
