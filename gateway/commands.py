"""Command lines at the top of a reply (`#estado resuelto`, `#nota`, `#cc +a@x.example`).

Pure code. Spanish or English, any case, with or without accents. Command lines are taken
off the text customers see. An agent's unknown or invalid command is an error naming the
line and the reason; a customer may only use `#prioridad`, `#cerrar` and `#resuelto`, and
any other `#` line of theirs is just text. Whether a customer's commands are honoured
depends on who wrote and what proves it (`judge_customer_commands`): a From header proves
nothing, a reply to a mail we sent that very person does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.fields import PRIORITY_WORDS, TYPE_WORDS, plain
from gateway.tickets import Status

STATUS_WORDS: dict[str, str] = {
    "abierto": Status.OPEN, "abierta": Status.OPEN, "reabrir": Status.OPEN, "open": Status.OPEN,
    "en progreso": Status.IN_PROGRESS, "en curso": Status.IN_PROGRESS, "trabajando": Status.IN_PROGRESS,
    "in progress": Status.IN_PROGRESS, "progress": Status.IN_PROGRESS,
    "esperando": Status.WAITING_CUSTOMER, "esperando respuesta": Status.WAITING_CUSTOMER,
    "pendiente": Status.WAITING_CUSTOMER, "pending": Status.WAITING_CUSTOMER, "waiting": Status.WAITING_CUSTOMER,
    "resuelto": Status.RESOLVED, "resuelta": Status.RESOLVED, "solucionado": Status.RESOLVED,
    "resolved": Status.RESOLVED, "solved": Status.RESOLVED,
    "cerrado": Status.CLOSED, "cerrada": Status.CLOSED, "closed": Status.CLOSED,
}  # fmt: skip
# The command word (accents and case folded) → what it sets.
ALIASES = {
    "estado": "status", "status": "status",
    "prioridad": "priority", "priority": "priority",
    "tipo": "type", "type": "type",
    "asignar": "assign", "assign": "assign",
    "nota": "note", "note": "note",
    "cc": "cc",
    "pais": "country", "country": "country",
    "marca": "brand", "brand": "brand",
    "producto": "product", "product": "product",
    "incidencia": "incident", "incident": "incident",
    "cerrar": "close", "close": "close",
    "resuelto": "solved", "solved": "solved", "resolved": "solved",
}  # fmt: skip
CUSTOMER_COMMANDS = frozenset({"priority", "close", "solved"})
COMMAND_LINE = re.compile(r"^#([^\W\d_][\w-]*)\s*(.*)$")
# local@domain with a dot inside the domain; the dot is checked in code, as a pattern
# `[^@]+\.[^@]+$` tries every dot against the rest (10 s for "a@" and 20,000 dots).
ADDRESS = re.compile(r"[^@\s<>]+@([^@\s<>]+)")
# Commands are a few lines at the top of a reply: past this many lines the rest is text,
# so the work done while the ticket is written is bounded whatever the mail's size.
MAX_COMMAND_LINES = 50


@dataclass(frozen=True)
class CommandError:
    line: str
    reason: str


@dataclass(frozen=True)
class Commands:
    changes: dict[str, str] = field(default_factory=dict)  # status, priority, type, assignee, …
    internal: bool = False
    cc_add: tuple[str, ...] = ()
    cc_remove: tuple[str, ...] = ()
    errors: tuple[CommandError, ...] = ()
    text: str = ""  # the reply without its command lines
    used: tuple[str, ...] = ()  # the commands taken (close, solved, priority, …), in order

    @property
    def any(self) -> bool:
        return bool(self.changes or self.internal or self.cc_add or self.cc_remove or self.errors)


def parse_commands(text: str, *, agent: bool, incident_values: tuple[str, ...] = ()) -> Commands:
    lines = text.splitlines()
    changes: dict[str, str] = {}
    cc_add: list[str] = []
    cc_remove: list[str] = []
    errors: list[CommandError] = []
    internal = False
    taken = 0
    used: list[str] = []
    for index, line in enumerate(lines[:MAX_COMMAND_LINES]):
        stripped = line.strip()
        match = COMMAND_LINE.match(stripped)
        if not stripped:
            continue
        name = ALIASES.get(plain(match.group(1))) if match else None
        if match is None or (not agent and name not in CUSTOMER_COMMANDS):
            break  # the reply's text begins here
        taken = index + 1
        used.append(name or match.group(1))
        argument = match.group(2).strip()
        if name is None:
            errors.append(CommandError(stripped, f"unknown command #{match.group(1)}"))
        elif name == "note":
            internal = True
        elif name == "cc":
            _cc(stripped, argument, cc_add, cc_remove, errors)
        else:
            value, reason = _value(name, match.group(1), argument, incident_values)
            if reason:
                errors.append(CommandError(stripped, reason))
            else:
                changes[_field(name)] = value
    remaining = "\n".join(lines[taken:]).strip("\n")
    return Commands(changes, internal, tuple(cc_add), tuple(cc_remove), tuple(errors), remaining, tuple(used))


class Role(StrEnum):
    """Who wrote a customer's mail into a ticket."""

    REQUESTER = "requester"
    CC = "cc"
    OTHER = "other"  # not on the ticket (let in by unknown_sender_policy = "accept")


class Proof(StrEnum):
    """What, beyond the From header anyone can write, says the mail comes from its author."""

    REPLY = "reply"  # In-Reply-To/References name a mail we sent that address on this ticket
    SIGNED = "signed"  # sent to a signed address of ours bound to that address
    NONE = "none"


# Who may run which customer command given the proof; absent: none.
CUSTOMER_RIGHTS: dict[tuple[Role, Proof], frozenset[str]] = {
    (Role.REQUESTER, Proof.REPLY): CUSTOMER_COMMANDS,
    (Role.REQUESTER, Proof.SIGNED): CUSTOMER_COMMANDS,
}
WHY_NOT = {
    Proof.NONE: "not a reply to a mail we sent this address, nor sent to a signed address",
    Role.CC: "only the ticket's requester may use commands",
    Role.OTHER: "the sender is not the ticket's requester",
}


@dataclass(frozen=True)
class CustomerCommands:
    honoured: Commands  # what to apply: the parsed commands, or none and the whole text
    refused: str = ""  # why the command lines were not honoured; "" when none were refused


def judge_customer_commands(text: str, role: Role, proof: Proof) -> CustomerCommands:
    """A customer's command lines, honoured all together or not at all: a refused mail keeps
    its command lines as text, so agents read exactly what was asked."""
    parsed = parse_commands(text, agent=False)
    if not parsed.used:
        return CustomerCommands(parsed)
    allowed = CUSTOMER_RIGHTS.get((role, proof), frozenset())
    if all(name in allowed for name in parsed.used):
        return CustomerCommands(parsed)
    why = WHY_NOT[role] if role is not Role.REQUESTER else WHY_NOT[proof]
    # The taken lines are the first command lines (blank lines between them are skipped).
    written = [line.strip() for line in text.splitlines()[:MAX_COMMAND_LINES] if COMMAND_LINE.match(line.strip())]
    return CustomerCommands(
        Commands(text=text), f"commands not honoured ({'; '.join(written[: len(parsed.used)])}): {why}"
    )


def _field(name: str) -> str:
    return {"assign": "assignee", "close": "status", "solved": "status"}.get(name, name)


def _value(name: str, typed: str, argument: str, incident_values: tuple[str, ...]) -> tuple[str, str]:
    """(value, "") or ("", why it is not valid); `typed` is the command word as written."""
    word = plain(argument)
    if name == "close":
        return Status.CLOSED, ""
    if name == "solved":
        return Status.RESOLVED, ""
    tables: dict[str, dict[str, str]] = {"status": STATUS_WORDS, "priority": PRIORITY_WORDS, "type": TYPE_WORDS}
    if name in tables:
        table = tables[name]
        if word in table:
            return table[word], ""
        return "", f"'{argument}' is not a {name} (#{typed}); use one of: {', '.join(sorted(table))}"
    if name == "assign":
        return (word, "") if is_address(word) else ("", f"'{argument}' is not an email address")
    if name == "incident":
        chosen = next((value for value in incident_values if plain(value) == word), None)
        if chosen is None:
            return "", f"'{argument}' is not an incident status; use one of: {', '.join(incident_values)}"
        return chosen, ""
    if not argument:  # country, brand, product
        return "", f"#{typed} needs a value"
    return argument, ""


def is_address(text: str) -> bool:
    match = ADDRESS.fullmatch(text)
    return match is not None and "." in match.group(1)[1:-1]


def _cc(line: str, argument: str, add: list[str], remove: list[str], errors: list[CommandError]) -> None:
    if not argument:
        errors.append(CommandError(line, "#cc needs +address or -address"))
    for item in argument.split():
        sign, address = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        address = address.strip("<>,;").lower()
        if not is_address(address):
            errors.append(CommandError(line, f"'{item}' is not an email address"))
        else:
            (add if sign == "+" else remove).append(address)
