"""The sections an operator tunes to run the daemon: retention, logging, health thresholds
of `status` and the metrics endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.rules.tickets import canonical_address as canonical_address  # the domain's rule, re-exported
from gateway.settings.sections import Section


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
