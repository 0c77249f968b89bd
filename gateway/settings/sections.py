"""The sections of the settings that shape the desk and its mail: the listener, the
database, tickets, limits, notifications, security, the pipeline, outbound mail and agents."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.model import Status
from gateway.rules.lifecycle import DEFAULT_CUSTOMER_REPLY_MOVES, agent_reply_moves, move_problems
from gateway.rules.tickets import canonical_address as canonical_address  # the domain's rule, re-exported

MIB = 1024 * 1024


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
