"""Command lines in a reply (`#estado resuelto`, `#nota`, `#cc +a@x.example`).

Pure code. Spanish or English, any case, with or without accents. Command lines are taken
off the text customers see. An agent's command line counts wherever it stands in the new
text (agents write "Hola," first and the command below it, and a command must never reach
the customer as text); an unknown or invalid one is an error quoting the line, with a code
the templates word in the mailbox's language. A customer's commands are the lines at the
top only, and they may only use `#prioridad`, `#cerrar` and `#resuelto`: any other `#` line
of theirs is just text. Whether a customer's commands are honoured
depends on who wrote and what proves it (`judge_customer_commands`): a From header proves
nothing, a reply to a mail we sent that very person does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gateway.model import Status
from gateway.rules.fields import PRIORITY_WORDS, TYPE_WORDS, plain

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
# `[^@]+\.[^@]+$` tries every dot against the rest: quadratic in the dots a sender writes.
ADDRESS = re.compile(r"[^@\s<>]+@([^@\s<>]+)")
# A customer's commands are a few lines at the top: past this many lines the rest is text.
# An agent's are looked for in every line (one regex match each: linear in the text), and
# past this many command lines the rest is an error, so the work stays bounded.
MAX_COMMAND_LINES = 50
# "#asignar Pedro Pérez <pedro@x.example>" or "#asignar <pedro@x.example>": the address inside.
ANGLE_ADDRESS = re.compile(r"<([^<>\s]*)>\s*$")


@dataclass(frozen=True)
class CommandError:
    """A bad command line: `reason` in English (notes, logs); `code` and `value` are what the
    templates word in the mailbox's language (templates/*/_command_error.txt)."""

    line: str  # as the agent wrote it
    reason: str
    code: str = "invalid"  # unknown_command, bad_value, not_address, needs_value, cc_needs_sign, …
    value: str = ""  # the word or argument at fault
    options: tuple[str, ...] = ()  # what would have been accepted

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "reason": self.reason, "code": self.code, "value": self.value,
                "options": list(self.options)}  # fmt: skip


@dataclass(frozen=True)
class Commands:
    changes: dict[str, str] = field(default_factory=dict)  # status, priority, type, assignee, …
    internal: bool = False
    cc_add: tuple[str, ...] = ()
    cc_remove: tuple[str, ...] = ()
    errors: tuple[CommandError, ...] = ()
    text: str = ""  # the reply without its command lines
    used: tuple[str, ...] = ()  # the commands taken (close, solved, priority, …), in order
    written: dict[str, str] = field(default_factory=dict)  # field changed → the line as written

    @property
    def any(self) -> bool:
        return bool(self.changes or self.internal or self.cc_add or self.cc_remove or self.errors)


def parse_commands(text: str, *, agent: bool, incident_values: tuple[str, ...] = ()) -> Commands:
    lines = text.splitlines()
    changes: dict[str, str] = {}
    written: dict[str, str] = {}
    cc_add: list[str] = []
    cc_remove: list[str] = []
    errors: list[CommandError] = []
    internal = False
    taken: set[int] = set()
    used: list[str] = []
    for index, line in enumerate(lines if agent else lines[:MAX_COMMAND_LINES]):
        stripped = line.strip()
        if not stripped:
            continue
        match = COMMAND_LINE.match(stripped)
        name = ALIASES.get(plain(match.group(1))) if match else None
        if match is None or (not agent and name not in CUSTOMER_COMMANDS):
            if agent:
                continue  # text; a command may still follow it
            break  # a customer's text begins here
        taken.add(index)
        if len(taken) > MAX_COMMAND_LINES:
            errors.append(CommandError(stripped, f"more than {MAX_COMMAND_LINES} command lines", "too_many",
                                       str(MAX_COMMAND_LINES)))  # fmt: skip
            break
        used.append(name or match.group(1))
        argument = match.group(2).strip()
        if name is None:
            errors.append(CommandError(stripped, f"unknown command #{match.group(1)}", "unknown_command",
                                       match.group(1), tuple(sorted({f"#{a}" for a in ALIASES}))))  # fmt: skip
        elif name == "note":
            internal = True
        elif name == "cc":
            _cc(stripped, argument, cc_add, cc_remove, errors)
        else:
            value, error = _value(name, match.group(1), argument, incident_values)
            if error:
                errors.append(replace(error, line=stripped))
            else:
                changes[_field(name)] = value
                written[_field(name)] = stripped
    if not agent:  # the top lines only: the text is what follows the last one taken
        taken = set(range(max(taken) + 1)) if taken else set()
    remaining = "\n".join(line for index, line in enumerate(lines) if index not in taken).strip("\n")
    return Commands(changes, internal, tuple(cc_add), tuple(cc_remove), tuple(errors), remaining, tuple(used),
                    written)  # fmt: skip


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


def _value(name: str, typed: str, argument: str, incident_values: tuple[str, ...]) -> tuple[str, CommandError | None]:
    """(value, None) or ("", why it is not valid); `typed` is the command word as written."""
    word = plain(argument)
    if name == "close":
        return Status.CLOSED, None
    if name == "solved":
        return Status.RESOLVED, None
    tables: dict[str, dict[str, str]] = {"status": STATUS_WORDS, "priority": PRIORITY_WORDS, "type": TYPE_WORDS}
    if name in tables:
        table = tables[name]
        if word in table:
            return table[word], None
        reason = f"'{argument}' is not a {name} (#{typed}); use one of: {', '.join(sorted(table))}"
        return "", CommandError("", reason, f"bad_{name}", argument, tuple(sorted(table)))
    if name == "assign":
        address = assignee_address(argument)
        if address is None:
            return "", CommandError("", f"'{argument}' is not an email address", "not_address", argument)
        return address, None
    if name == "incident":
        chosen = next((value for value in incident_values if plain(value) == word), None)
        if chosen is None:
            reason = f"'{argument}' is not an incident status; use one of: {', '.join(incident_values)}"
            return "", CommandError("", reason, "bad_incident", argument, incident_values)
        return chosen, None
    if not argument:  # country, brand, product
        return "", CommandError("", f"#{typed} needs a value", "needs_value", f"#{typed}")
    return argument, None


def assignee_address(argument: str) -> str | None:
    """The address in "pedro@x", "<pedro@x>" or "Pedro Pérez <pedro@x>", lower case; None if none."""
    angle = ANGLE_ADDRESS.search(argument)
    candidate = (angle.group(1) if angle else argument).strip().lower()
    return candidate if is_address(candidate) else None


def is_address(text: str) -> bool:
    match = ADDRESS.fullmatch(text)
    return match is not None and "." in match.group(1)[1:-1]


def _cc(line: str, argument: str, add: list[str], remove: list[str], errors: list[CommandError]) -> None:
    if not argument:
        errors.append(CommandError(line, "#cc needs +address or -address", "cc_needs_sign"))
    for item in argument.split():
        sign, address = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        address = address.strip("<>,;").lower()
        if not is_address(address):
            errors.append(CommandError(line, f"'{item}' is not an email address", "not_address", item))
        else:
            (add if sign == "+" else remove).append(address)
