"""One `[[mailboxes]]` table: a support address, the ticket fields it implies, and its
optional IMAP source (with OAuth2 for Gmail and Microsoft 365)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from gateway.model import Priority, TicketType
from gateway.rules.tickets import Mailbox
from gateway.settings.sections import Section


class OAuth2Settings(Section):
    """XOAUTH2 (Gmail, Microsoft 365): the access token from `token_command`, or refreshed
    at `token_url` from a refresh token. Secrets are named by environment variable, never
    written in the file, so `check-config` cannot show them."""

    # A command printing a current access token on stdout (run without a shell).
    token_command: tuple[str, ...] = ()
    # Else: the OAuth2 token endpoint, the client id, and the environment variables that
    # hold the client secret and the refresh token (RFC 6749 §6).
    token_url: str = ""
    client_id: str = ""
    client_secret_env: str = ""
    refresh_token_env: str = ""

    @model_validator(mode="after")
    def _one_way(self) -> OAuth2Settings:
        refresh = (self.token_url, self.client_id, self.refresh_token_env)
        if bool(self.token_command) == any(refresh):
            raise ValueError("give token_command, or token_url + client_id + refresh_token_env, not both")
        if not self.token_command and not all(refresh):
            raise ValueError("token_url, client_id and refresh_token_env go together")
        return self


class ImapSettings(Section):
    """A mailbox read over IMAP (docs/imap.md): a message leaves the folder only after it
    is durably in the spool."""

    host: str
    port: int = Field(default=993, ge=1, le=65535)
    # "tls" (implicit, port 993) or "none" (loopback and tests only). STARTTLS is not
    # offered: aioimaplib has no STARTTLS, and every hosted mailbox speaks port 993.
    security: Literal["tls", "none"] = "tls"
    username: str
    # The environment variable holding the password (LOGIN); empty with [oauth2].
    password_env: str = ""
    oauth2: OAuth2Settings | None = None
    folder: str = "INBOX"
    # What happens to a message once it is in the spool: "move" to done_folder (created
    # when missing), "flag" with done_flag (it stays; flagged ones are skipped), "delete".
    after: Literal["move", "flag", "delete"] = "move"
    done_folder: str = "Procesados"
    done_flag: str = Field(default="$Ticketed", pattern=r"^\$?[A-Za-z][A-Za-z0-9_]*$")
    # Messages fetched per round: memory holds at most this many at once.
    batch_size: int = Field(default=20, ge=1, le=500)
    # IDLE is re-issued this often (RFC 2177 §3: servers may drop it after 30 minutes).
    idle_minutes: float = Field(default=25.0, gt=0, le=29)
    # Without IDLE, the folder is checked this often.
    poll_seconds: float = Field(default=60.0, gt=0)
    # After a failure, the next connection waits first_retry_seconds, doubling up to max.
    first_retry_seconds: float = Field(default=5.0, gt=0)
    max_retry_seconds: float = Field(default=300.0, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_credential(self) -> ImapSettings:
        if bool(self.password_env) == (self.oauth2 is not None):
            raise ValueError("give password_env or an [oauth2] table, one of them")
        return self


class MailboxSettings(Section):
    address: str
    name: str = ""
    country: str = ""
    brand: str = ""
    product: str = ""
    default_type: TicketType = TicketType.REQUEST
    default_priority: Priority = Priority.MEDIUM
    language: Literal["es", "en", "pt"] = "es"
    # "Mis tickets" lists colleagues' tickets too: only by the same valid fiscal id.
    company_tickets_visible: bool = False
    # The IANA zone (zoneinfo) of the dates in this mailbox's mail, e.g. "America/Santiago".
    # UTC by default: a wrong guess would shift every time a customer reads.
    timezone: str = "UTC"
    # Read this mailbox over IMAP as well ([mailboxes.imap]); see docs/imap.md.
    imap: ImapSettings | None = None

    @field_validator("timezone")
    @classmethod
    def _is_a_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'not a time zone: {value!r} (an IANA name such as "America/Santiago")') from None
        return value.strip()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("address")
    @classmethod
    def _is_an_address(cls, value: str) -> str:
        value = value.strip().lower()
        local, _, domain = value.partition("@")
        if not local or "." not in domain or any(c.isspace() for c in value):
            raise ValueError(f"not an email address: {value!r}")
        return value

    def as_mailbox(self) -> Mailbox:
        return Mailbox(
            address=self.address,
            country=self.country,
            brand=self.brand,
            product=self.product,
            default_type=self.default_type,
            default_priority=self.default_priority,
        )
