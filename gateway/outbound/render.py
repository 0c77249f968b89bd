"""Render a planned notification into a complete mail, bytes ready for the relay.

The only module that imports jinja2 and babel. Guarantees: every subject carries the ticket
token; the bytes themselves are written by `mime`, which keeps customer text out of the
headers' structure.

Each text exists once: gateway/templates/ holds one set of templates written in English, and
gateway/locale/<lang>/LC_MESSAGES/messages.po translates their strings (Jinja2's i18n
extension, `{% trans %}` and `_()`). Adding a language is a catalog, not a copy of the
templates; babel.cfg says how.
"""

from __future__ import annotations

import gettext
import secrets
from dataclasses import dataclass, field
from email.utils import format_datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)

from gateway.clock import Clock
from gateway.model import Address, Attachment, MessageView, StoredFile, TicketView
from gateway.outbound import mime
from gateway.outbound.outbox import OutboundMail
from gateway.outbound.wording import day, greeting_name, when
from gateway.rules.recipients import RULES, PlannedMail, entry_kind
from gateway.rules.subject_token import ticket_token
from gateway.settings import MailboxSettings, Settings

GATEWAY_NAME = "ticket-gateway"
MAX_REFERENCES = 20  # enough for any client to thread; bounded so headers stay small
MAX_PREVIOUS_MESSAGES = 5
READ_PIECE_BYTES = 57 * 4096  # whole base64 lines: nothing carried over between pieces
MESSAGE_TOKEN_BYTES = 8  # 16 hex characters: a return address's token (rules/signed_addresses.py)


@dataclass(frozen=True)
class Carried:
    """The triggering customer mail's files as agents get them: attached (base64 lines, read
    from the store in pieces) or, past the bound per mail, named with how to fetch them."""

    files: tuple[tuple[str, str, mime.Content], ...] = ()  # file name, content type, content
    left_out: tuple[StoredFile, ...] = ()
    bound: int = 0  # settings.outbound.max_agent_attachment_bytes


def fit(files: tuple[StoredFile, ...], bound: int) -> tuple[list[StoredFile], list[StoredFile]]:
    """Which files go in a mail whose attachments total at most `bound` bytes, in their order:
    a large file left out does not keep the small ones after it out."""
    taken: list[StoredFile] = []
    left_out: list[StoredFile] = []
    room = bound
    for file in files:
        if file.size <= room:
            taken.append(file)
            room -= file.size
        else:
            left_out.append(file)
    return taken, left_out


@dataclass(frozen=True)
class Occasion:
    """What happened, for the templates: the triggering message and what else they show."""

    trigger: MessageView | None
    change: dict[str, Any] = field(default_factory=dict)  # status, reopened, rating links, …
    attachments: tuple[Attachment, ...] = ()  # forwarded with an agent's reply
    carried: Carried = Carried()  # the customer's files, in agents' notifications
    reply_to: str | None = None  # default: the mailbox; agents get their signed address
    open_address: str = ""  # agents' mail: their signed address for opening tickets for customers
    from_name: str | None = None  # default: the mailbox's name
    extra: dict[str, Any] = field(default_factory=dict)  # errors, ticket lists, …


def shipped_catalogs() -> Path:
    return Path(__file__).resolve().parent.parent / "locale"


def catalog(language: str) -> gettext.NullTranslations:
    """The language's translations, compiled from its .po when loaded: one file to edit, and
    no compiled .mo to keep in step. Without a catalog the templates' own (English) words show."""
    path = shipped_catalogs() / language / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        messages = read_po(source)
    compiled = BytesIO()
    write_mo(compiled, messages)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class LanguageLoader(BaseLoader):
    """An admin's `<templates_dir>/<lang>/<name>`, then `<templates_dir>/<name>`, then ours.

    A name written "<lang>/<name>" (`{% include "es/_mark.txt" %}` in an override made for
    per-language folders) means <name> in this language."""

    def __init__(self, language: str, override: Path | None) -> None:
        self.language = language
        folders = [override / language, override] if override is not None else []
        self.loaders: list[BaseLoader] = [FileSystemLoader(folder) for folder in folders]
        self.loaders.append(PackageLoader("gateway", "templates"))

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Any]:
        name = template.removeprefix(f"{self.language}/")
        for loader in self.loaders:
            try:
                return loader.get_source(environment, name)
            except TemplateNotFound:
                continue
        raise TemplateNotFound(template)


def environment(language: str, override: Path | None) -> Environment:
    """Templates as one language's readers get them. The babel.cfg extraction options match
    these (trim_blocks, lstrip_blocks), so the catalogs' msgids are the strings looked up."""
    made = Environment(
        loader=LanguageLoader(language, override),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # checked once at start-up; no stat() per mail
        extensions=["jinja2.ext.i18n"],
    )
    made.install_gettext_translations(catalog(language), newstyle=False)  # type: ignore[attr-defined]
    return made


class Renderer:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.environments: dict[str, Environment] = {}  # per language, made on first use

    def render(
        self, planned: PlannedMail, ticket: TicketView | None, mailbox: MailboxSettings, occasion: Occasion
    ) -> OutboundMail:
        """A complete mail; `ticket` is None only for mail about no one ticket (my tickets)."""
        context = self._context(planned, ticket, mailbox, occasion)
        templates = self._environment(mailbox.language)
        name = planned.template
        subject = mime.one_line(templates.get_template(f"{name}.subject.txt").render(context))
        if ticket is not None and ticket_token(ticket.number) not in subject:
            subject = f"{ticket_token(ticket.number)} {subject}"  # an override forgot it: keep threading
        text = templates.get_template(f"{name}.txt").render(context)
        html = templates.get_template(f"{name}.html").render(context)
        # Random first, then the ticket: the first part is what a return address carries (rules/signed_addresses.py).
        idstring = ticket.number.lower() if ticket else "gateway"
        message_id = f"{secrets.token_hex(MESSAGE_TOKEN_BYTES)}.{idstring}@{self.settings.message_id_domain}"
        recipients = tuple(person.address for person in (*planned.to, *planned.cc))
        headers = {
            "From": mime.mailbox(occasion.from_name or mailbox.name, mailbox.address),
            "To": mime.address_list((p.name, p.address) for p in planned.to),
            "Cc": mime.address_list((p.name, p.address) for p in planned.cc),
            "Reply-To": occasion.reply_to or mailbox.address,
            "Subject": mime.unstructured(subject),
            "Date": format_datetime(self.clock.now()),
            "Message-ID": f"<{message_id}>",
            **(_threading_headers(ticket, occasion.trigger, recipients) if ticket else {}),
            "Auto-Submitted": planned.auto_submitted,
            # Asks Exchange not to answer with an out-of-office: one fewer loop to break.
            "X-Auto-Response-Suppress": "All",
            "X-Loop": f"{GATEWAY_NAME} {mailbox.address}",
            "X-Ticket-Number": ticket.number if ticket else "",
        }
        files = list(occasion.carried.files) if planned.for_agents else _sent_on(occasion.attachments)
        return OutboundMail(
            template=planned.template,
            message_id=message_id,
            envelope_from=mailbox.address,
            recipients=recipients,
            raw=mime.compose(list(headers.items()), text, html, files),
        )

    def check(self) -> None:
        """Render every template of every mailbox language once, so a broken override
        stops the daemon at start-up instead of failing each mail later."""
        sample = _sample_ticket()
        for mailbox in self.settings.mailboxes:
            for rule in RULES:
                planned = PlannedMail(rule.template, (sample.requester,), sample.cc, rule.auto_submitted, False)
                try:
                    self.render(planned, sample, mailbox, sample_occasion(sample))
                except TemplateError as error:
                    where = f"{mailbox.language}/{rule.template}"
                    raise TemplateCheckError(f"template {where}: {error.message or error}") from error

    def _environment(self, language: str) -> Environment:
        if language not in self.environments:
            self.environments[language] = environment(language, self.settings.outbound.templates_dir)
        return self.environments[language]

    def _context(
        self, planned: PlannedMail, ticket: TicketView | None, mailbox: MailboxSettings, occasion: Occasion
    ) -> dict[str, Any]:
        # Customers never see internal notes or system entries; agents see everything.
        shown = [m for m in (ticket.messages if ticket else ()) if planned.for_agents or m.visibility == "public"]
        latest = occasion.trigger if occasion.trigger in shown else (shown[-1] if shown else None)
        previous = [m for m in reversed(shown) if m is not latest][:MAX_PREVIOUS_MESSAGES]
        # What support last said in public: what a "waiting for your reply" mail asks about.
        asked = next((m for m in reversed(shown) if m.direction == "outbound" and m.visibility == "public"), None)
        language, zone = mailbox.language, mailbox.zone
        return {
            **occasion.extra,
            "ticket": ticket,
            "mailbox": mailbox,
            "token": ticket_token(ticket.number) if ticket else "",
            "recipient": planned.to[0],
            "latest": latest,
            "previous": previous,
            "change": occasion.change,
            # Files too large for the agents' mail: named with the command that gets them.
            "attachments_left_out": occasion.carried.left_out if planned.for_agents else (),
            "attachments_bound": occasion.carried.bound,
            "label": lambda key: self.settings.label(str(key), mailbox.language),
            "open_address": occasion.open_address,
            "for_agents": planned.for_agents,  # agents' copies show the whole ticket (notify.entry_kind)
            "kind": lambda message: entry_kind(message.visibility, message.note),
            # Dates as the mailbox's readers write them, in its zone (wording.py).
            "when": lambda value: when(value, language, zone),
            "day": lambda value: day(value, language, zone),
            "greet": greeting_name(planned.to[0]),  # "" for a bare address: "Hola," alone
            "asked": asked,
        }


class TemplateCheckError(Exception):
    """A template that cannot be rendered; the message names it."""


def sample_occasion(ticket: TicketView) -> Occasion:
    """Everything any template may use, for the start-up check and tests."""
    change = {
        "status": "resolved",
        "reopened": False,
        "rate_yes": "s+rate.y@x.example",
        "rate_no": "s+rate.n@x.example",
    }
    listing = [{"number": ticket.number, "subject": ticket.subject, "status": "open", "priority": "medium",
                "created_at": ticket.created_at, "last_answer": None}]  # fmt: skip
    errors = [{"line": "#estado volando", "reason": "'volando' is not a status"}]
    extra = {"errors": errors, "tickets": listing, "limit": 20, "muted": ["bot@cliente.example"], "ticket_limit": 50}
    left_out = (StoredFile(7, "respaldo.zip", "application/zip", 31_457_280, "0" * 64),)
    return Occasion(ticket.messages[-1], change, extra=extra, carried=Carried(left_out=left_out, bound=20 * 2**20))


def _sample_ticket() -> TicketView:
    customer = Address("María José Pérez", "maria@cliente.example")
    message = MessageView("sample@cliente.example", "inbound", customer, "2026-11-20T12:00:00+00:00", "Hola.", ())
    return TicketView(
        id=0, number="TK-000000", subject="Prueba", status="open", priority="medium", type="request",
        mailbox="", country="", brand="", product="", created_at=message.date, requester=customer,
        cc=(Address("Jorge Núñez", "jorge@cliente.example"),), unreachable=frozenset(), messages=(message,),
    )  # fmt: skip


def _sent_on(attachments: tuple[Attachment, ...]) -> list[tuple[str, str, mime.Content]]:
    """An agent's files for the customer, but the images their HTML showed inline (the
    signature's logo): the customer gets our text and HTML, where they would be stray files."""
    files: list[tuple[str, str, mime.Content]] = []
    for attachment in attachments:
        if attachment.inline:
            continue
        lines = mime.Base64Lines()
        if isinstance(attachment.content, bytes):
            lines.write(attachment.content)
        else:  # spilled by the parser worker: read in pieces, not whole
            with attachment.content.path.open("rb") as source:
                for piece in iter(lambda: source.read(READ_PIECE_BYTES), b""):
                    lines.write(piece)
        files.append((attachment.filename, attachment.content_type, lines.done()))
    return files


def _threading_headers(ticket: TicketView, trigger: MessageView | None, recipients: tuple[str, ...]) -> dict[str, str]:
    """In-Reply-To the mail we answer; References the ticket's thread, oldest first.

    A Message-ID in UTF-8 (RFC 6532 allows it) is kept only in mail that needs SMTPUTF8
    anyway: elsewhere it would make mail to plain addresses unsendable through a relay
    without SMTPUTF8, and the subject's token threads it all the same."""
    utf8 = not all(address.isascii() for address in recipients)
    thread = [m.message_id for m in ticket.messages if m.message_id and (utf8 or m.message_id.isascii())]
    replied = trigger.message_id if trigger and trigger.message_id and (utf8 or trigger.message_id.isascii()) else ""
    if replied in thread:
        thread = thread[: thread.index(replied) + 1]
    references = [f"<{mime.one_line(mid)}>" for mid in thread][-MAX_REFERENCES:]
    in_reply_to = f"<{mime.one_line(replied)}>" if replied else ""
    return {"In-Reply-To": in_reply_to, "References": " ".join(references)}
