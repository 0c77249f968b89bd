"""The one typed settings object, read from a TOML file with `GATEWAY_*` overrides.

Built once by the CLI and passed to what needs it. Environment variables win over the file:
`GATEWAY_SMTP__PORT=2600` overrides `[smtp] port`.
"""

from __future__ import annotations

import os
import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.model import Priority, Status, TicketType
from gateway.rules.lifecycle import DEFAULT_CUSTOMER_REPLY_MOVES, agent_reply_moves, move_problems
from gateway.rules.tickets import LABELS, Mailbox
from gateway.rules.tickets import canonical_address as canonical_address  # the domain's rule, re-exported

ENV_PREFIX = "GATEWAY_"
CONFIG_PATH_VARIABLE = "GATEWAY_CONFIG"
MIB = 1024 * 1024


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    protocol: Literal["smtp", "lmtp"] = "smtp"
    max_message_size: int = Field(default=25 * MIB, gt=0)
    hostname: str = "ticket-gateway"
    # Connections open at once, in all and from one client address; past either a new
    # connection hears "421 4.7.0" and is closed (RFC 5321 §3.8). Keep max_connections well
    # under the daemon's open-file limit (`ulimit -n`), and the per-client one at least the
    # concurrency of the MTA in front (Postfix: default_destination_concurrency_limit, 20).
    max_connections: int = Field(default=200, gt=0)
    max_connections_per_client: int = Field(default=20, gt=0)
    # A connection that sends nothing this long is closed with 421 4.4.2 (RFC 5321 §4.5.3.2:
    # at least 5 minutes); during DATA every byte received restarts it.
    idle_timeout_seconds: float = Field(default=300.0, gt=0)
    # DATA taking longer than this in all, however steadily it flows, is cut with 421 4.4.2
    # and nothing is stored (25 MiB in 20 minutes needs about 22 KB/s).
    data_timeout_seconds: float = Field(default=1200.0, gt=0)


class DatabaseSettings(Section):
    path: Path = Path("ticket-gateway.db")


DEFAULT_INCIDENT_VALUES = (
    "Esperando creación",
    "Incidencia en progreso",
    "Incidencia completada",
    "No requiere incidencia",
)


class TicketSettings(Section):
    number_prefix: str = Field(default="TK", pattern=r"^[A-Za-z][A-Za-z0-9]{0,9}$")
    auto_close_hours: float = Field(default=48.0, gt=0)
    close_stale_every_minutes: float = Field(default=10.0, gt=0)
    # Where an agent's public reply moves an open or in-progress ticket; "" leaves it.
    agent_reply_status: Status | Literal[""] = Status.WAITING_CUSTOMER
    # A desk's own transitions, {from = "to"}: a status not named does not move. The agents'
    # table, when given, replaces agent_reply_status. Never out of or into "closed".
    customer_reply_moves: dict[Status, Status] = dict(DEFAULT_CUSTOMER_REPLY_MOVES)
    agent_reply_moves: dict[Status, Status] | None = None
    incident_values: tuple[str, ...] = DEFAULT_INCIDENT_VALUES
    # A reply carrying a ticket's token from someone who is not its requester, a CC or an
    # agent: "flag" (kept for agents only, who are told; no commands), "accept" (as a
    # participant), or "new_ticket" (opens a ticket of its own).
    unknown_sender_policy: Literal["flag", "accept", "new_ticket"] = "flag"

    @model_validator(mode="after")
    def _usable_moves(self) -> TicketSettings:
        if self.agent_reply_moves is not None and "agent_reply_status" in self.model_fields_set:
            raise ValueError("give agent_reply_moves or agent_reply_status, not both")
        problems = move_problems(self.customer_reply_moves) + move_problems(self.agent_moves)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def agent_moves(self) -> dict[Status, Status]:
        """What an agent's public reply does to each status."""
        if self.agent_reply_moves is not None:
            return self.agent_reply_moves
        return agent_reply_moves(Status(self.agent_reply_status) if self.agent_reply_status else None)


class LimitSettings(Section):
    """What a mail may hold before it is refused (header) or kept raw as failed (the rest)."""

    max_header_bytes: int = Field(default=256 * 1024, gt=0)
    max_parts: int = Field(default=500, gt=0)
    max_depth: int = Field(default=20, gt=0)
    max_attachments: int = Field(default=100, gt=0)
    max_attachment_bytes: int = Field(default=25 * MIB, gt=0)
    # A runaway sender (a misconfigured ERP, a loop we cannot see): past this many new
    # tickets in an hour its mail is still stored, but acknowledgements stop.
    new_tickets_per_sender_per_hour: int = Field(default=20, gt=0)
    # One mail copying thousands of addresses must not make our mailbox a spam relay: at
    # most this many people it copies join the ticket (the rest are listed for agents)...
    max_new_participants_per_mail: int = Field(default=10, ge=0)
    # ...and no one notification goes to more than this many recipients.
    max_recipients_per_notification: int = Field(default=20, gt=0)


class NotificationSettings(Section):
    """Bounds on the mail we send about one ticket: a naive auto-responder (no RFC 3834
    header) answering every notification, or two of them copied on one ticket, would
    otherwise loop with us for ever. Past a bound, silence for the hour and agents told once."""

    # At most this many mails to one address about one ticket in any hour; then that
    # address hears nothing more of that ticket until the hour has passed.
    per_recipient_per_ticket_per_hour: int = Field(default=10, gt=0)
    # At most this many mails about one ticket in any hour, to everybody together.
    per_ticket_per_hour: int = Field(default=50, gt=0)
    # Agents hear once of each address muted on a ticket; at most this many such notices
    # about one ticket in any hour (a mail could copy dozens of auto-responders).
    muted_notices_per_ticket_per_hour: int = Field(default=5, gt=0)


class SecuritySettings(Section):
    # Key of the signed reply and rating addresses. Set it from the environment
    # (GATEWAY_SECURITY__SECRET); empty: one is generated and kept in the database.
    secret: SecretStr = SecretStr("")
    # An Authentication-Results header proves an agent only when BOTH are set (RFC 8601 §5):
    # it names one of these authserv-ids (our own border MX) and the mail came straight
    # from one of trusted_relays (SMTP peer address; an IP address or a network).
    trusted_authserv_ids: tuple[str, ...] = ()
    trusted_relays: tuple[IPv4Network | IPv6Network, ...] = ()
    # Check agents' DKIM signatures ourselves (DNS look-ups, each and all together bounded
    # by dkim_timeout_seconds); only for an agent's reply to a ticket not proven otherwise.
    verify_dkim: bool = False
    dkim_timeout_seconds: float = Field(default=5.0, gt=0)

    @field_validator("trusted_authserv_ids", mode="after")
    @classmethod
    def _lower_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(item.strip().lower() for item in value)

    @field_validator("trusted_relays", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        # "127.0.0.1" is the network 127.0.0.1/32; "10.0.0.1/8" (host bits set) is refused.
        if isinstance(value, list | tuple):
            return tuple(ip_network(item.strip()) if isinstance(item, str) else item for item in value)
        return value


class PipelineSettings(Section):
    max_attempts: int = Field(default=3, ge=1)
    # Processes that parse mail beside the event loop; 0 parses in the daemon itself.
    parse_workers: int = Field(default=1, ge=0, le=16)
    # Flow control: with this many mails waiting to be processed, new mail gets 451 (the
    # sending MTA keeps it and retries) until the pipeline catches up; 0: no limit.
    max_backlog: int = Field(default=5000, ge=0)
    poll_seconds: float = Field(default=1.0, gt=0)


class OutboundSettings(Section):
    """The relay every notification goes through, and how hard we try."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=0, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Retry a temporary failure after first_retry_seconds, doubling up to max_retry_seconds,
    # until give_up_hours after the mail was queued (then it is marked failed).
    first_retry_seconds: float = Field(default=60.0, gt=0)
    max_retry_seconds: float = Field(default=3600.0, gt=0)
    give_up_hours: float = Field(default=48.0, gt=0)
    # ...or after this many attempts, whichever comes first.
    max_attempts: int = Field(default=100, ge=1)
    # While the relay does not answer at all, try to reach it this often (no attempt is
    # counted), so the backlog goes out soon after an outage ends.
    probe_seconds: float = Field(default=30.0, gt=0)
    # Domain of the Message-IDs we generate; empty: the first mailbox's domain.
    message_id_domain: str = ""
    # A folder whose files replace the shipped templates of the same name.
    templates_dir: Path | None = None
    # Whether other CC participants hear of a customer's reply (agents always do).
    copy_customer_replies_to_participants: bool = True
    # Agents' notifications carry the customer's files up to this many bytes in all (base64
    # makes the mail about a third larger); the rest are listed with the command that gets
    # them. 0: list them all, attach none.
    max_agent_attachment_bytes: int = Field(default=20 * MIB, ge=0)


class AgentSettings(Section):
    """Who the support agents are, and where their notifications go."""

    # Address that receives agent notifications (a team list); empty: no agent mail.
    notify_address: str = ""
    # Agents' own addresses, and whole domains whose senders are agents.
    addresses: list[str] = []
    domains: list[str] = []

    @field_validator("notify_address", "addresses", "domains", mode="after")
    @classmethod
    def _lower(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            return value.strip().lower()
        return [item.strip().lower() for item in value]

    def is_agent(self, address: str) -> bool:
        address = address.lower()
        return address in self.addresses or address.rpartition("@")[2] in self.domains


class RetentionSettings(Section):
    """How long what is only kept for looking back is kept; tickets, their messages and
    attachments are kept for ever. 0: keep for ever too."""

    # Raw bytes of inbound mail processed (done or ignored) this many days ago; failed mail
    # stays until retried. Envelopes of mail that became a ticket's message stay with it.
    inbound_days: int = Field(default=90, ge=0)
    # Mail the relay accepted this many days ago; queued and failed mail stays.
    outbox_days: int = Field(default=90, ge=0)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "json": one object per line (time, level, process, logger, message, and the spool id,
    # Message-ID, ticket, outcome and rule where a line is about a mail) for a log shipper.
    format: Literal["text", "json"] = "text"


class HealthSettings(Section):
    """Thresholds of `ticket-gateway status`: at or past a warning value it exits 1, at or
    past a critical one 2 (Nagios plugin convention). 0 turns a threshold off."""

    backlog_warning: int = Field(default=100, ge=0)
    backlog_critical: int = Field(default=1000, ge=0)
    oldest_waiting_warning_minutes: float = Field(default=10.0, ge=0)
    oldest_waiting_critical_minutes: float = Field(default=60.0, ge=0)
    failed_inbound_warning: int = Field(default=1, ge=0)
    failed_outbox_warning: int = Field(default=1, ge=0)
    deferred_outbox_warning: int = Field(default=10, ge=0)
    deferred_outbox_critical: int = Field(default=100, ge=0)
    free_disk_warning_mib: int = Field(default=1024, ge=0)
    free_disk_critical_mib: int = Field(default=100, ge=0)
    # How long the listener may take to greet (220) before it counts as not answering.
    connect_timeout_seconds: float = Field(default=5.0, gt=0)


class MetricsSettings(Section):
    # host:port of the Prometheus endpoint (/metrics), e.g. "127.0.0.1:9325"; "" (the
    # default): no endpoint. Port 0 picks a free one (its log line says which).
    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        value = value.strip()
        if value:
            split_listen(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        return split_listen(self.listen) if self.listen else None


def split_listen(value: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" as (host, port); ValueError naming the value."""
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'not host:port: {value!r} (e.g. "127.0.0.1:9325")')
    return host, int(port)


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True)

    smtp: SmtpSettings = SmtpSettings()
    database: DatabaseSettings = DatabaseSettings()
    tickets: TicketSettings = TicketSettings()
    pipeline: PipelineSettings = PipelineSettings()
    logging: LoggingSettings = LoggingSettings()
    outbound: OutboundSettings = OutboundSettings()
    agents: AgentSettings = AgentSettings()
    security: SecuritySettings = SecuritySettings()
    limits: LimitSettings = LimitSettings()
    notifications: NotificationSettings = NotificationSettings()
    health: HealthSettings = HealthSettings()
    metrics: MetricsSettings = MetricsSettings()
    retention: RetentionSettings = RetentionSettings()
    # Per language, labels replacing the defaults: [labels.es] open = "Enviado".
    labels: dict[Literal["es", "en", "pt"], dict[Status | Priority | TicketType, str]] = {}
    mailboxes: list[MailboxSettings] = Field(min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment must win over them.
        return (env_settings, init_settings)

    def mailbox_for(self, address: str) -> MailboxSettings | None:
        """The mailbox an envelope recipient means; `local+tag@domain` is `local@domain`."""
        wanted = canonical_address(address)
        return next((box for box in self.mailboxes if box.address == wanted), None)

    @property
    def our_addresses(self) -> frozenset[str]:
        return frozenset(box.address for box in self.mailboxes)

    def label(self, key: str, language: str = "es") -> str:
        """What a person reads for a stable key, in a language: config first, then defaults."""
        configured = self.labels.get(language, {})  # type: ignore[call-overload]
        return str(configured.get(key) or LABELS.get(language, LABELS["es"]).get(key, key))

    @property
    def message_id_domain(self) -> str:
        return self.outbound.message_id_domain or self.mailboxes[0].address.rpartition("@")[2]

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by asterisks."""
        masked: dict[str, Any] = _mask(self.model_dump(mode="json"), self)
        return masked


def _mask(data: Any, model: Any) -> Any:
    if isinstance(model, BaseModel):
        return {
            key: "********" if isinstance(getattr(model, key), SecretStr) else _mask(value, getattr(model, key))
            for key, value in data.items()
        }
    if isinstance(model, list):
        return [_mask(item_data, item) for item_data, item in zip(data, model, strict=True)]
    return data


def config_path(cli_path: str | None) -> Path:
    chosen = cli_path or os.environ.get(CONFIG_PATH_VARIABLE)
    if not chosen:
        raise ConfigError(f"no configuration file: give --config PATH or set {CONFIG_PATH_VARIABLE}")
    return Path(chosen)


def load_settings(path: Path) -> Settings:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read configuration file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return Settings(**data)
    except ValidationError as error:
        raise ConfigError(_describe(path, error)) from None


def _describe(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        variable = ENV_PREFIX + "__".join(str(part) for part in problem["loc"]).upper()
        origin = f" (from environment variable {variable})" if variable in os.environ else ""
        lines.append(f"  {key}: {problem['msg']}{origin}")
    return "\n".join(lines)
