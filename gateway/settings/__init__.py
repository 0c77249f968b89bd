"""The one typed settings object, read from a TOML file with `GATEWAY_*` overrides.

Built once by the CLI and passed to what needs it. Environment variables win over the file:
`GATEWAY_SMTP__PORT=2600` overrides `[smtp] port`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.model import Priority, Status, TicketType
from gateway.rules.tickets import LABELS
from gateway.rules.tickets import canonical_address as canonical_address  # the domain's rule, re-exported

# Every section, so that `from gateway.settings import MailboxSettings` serves everyone:
# the modules below hold them only to keep each file to one kind of setting.
from gateway.settings.mailboxes import ImapSettings as ImapSettings
from gateway.settings.mailboxes import MailboxSettings as MailboxSettings
from gateway.settings.mailboxes import OAuth2Settings as OAuth2Settings
from gateway.settings.operating import HealthSettings as HealthSettings
from gateway.settings.operating import LoggingSettings as LoggingSettings
from gateway.settings.operating import MetricsSettings as MetricsSettings
from gateway.settings.operating import RetentionSettings as RetentionSettings
from gateway.settings.operating import split_listen as split_listen
from gateway.settings.sections import DEFAULT_INCIDENT_VALUES as DEFAULT_INCIDENT_VALUES
from gateway.settings.sections import MIB as MIB
from gateway.settings.sections import AgentSettings as AgentSettings
from gateway.settings.sections import DatabaseSettings as DatabaseSettings
from gateway.settings.sections import LimitSettings as LimitSettings
from gateway.settings.sections import NotificationSettings as NotificationSettings
from gateway.settings.sections import OutboundSettings as OutboundSettings
from gateway.settings.sections import PipelineSettings as PipelineSettings
from gateway.settings.sections import Section as Section
from gateway.settings.sections import SecuritySettings as SecuritySettings
from gateway.settings.sections import SmtpSettings as SmtpSettings
from gateway.settings.sections import TicketSettings as TicketSettings

ENV_PREFIX = "GATEWAY_"
CONFIG_PATH_VARIABLE = "GATEWAY_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


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
