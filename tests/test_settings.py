"""Configuration: the example file loads, the environment overrides, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.settings import ConfigError, canonical_address, load_settings
from tests.conftest import PROJECT

EXAMPLE = PROJECT / "config.example.toml"


def test_example_config_loads_with_the_estela_mailbox_first() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.mailboxes[0].address == "soporte.latam@estela.example"
    assert settings.smtp.max_message_size == 25 * 1024 * 1024
    assert settings.tickets.number_prefix == "TK"


def test_every_example_key_has_a_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[index - 1].lstrip().startswith("#"), f"key without a comment: {line!r}"


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SMTP__PORT", "2600")
    monkeypatch.setenv("GATEWAY_DATABASE__PATH", "/tmp/elsewhere.db")
    settings = load_settings(EXAMPLE)
    assert settings.smtp.port == 2600
    assert str(settings.database.path) == "/tmp/elsewhere.db"
    assert settings.smtp.host == "127.0.0.1"  # the rest of the section still comes from the file


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[smtp]\nprot = "smtp"\n', "smtp.prot"),
        ('[smtp]\nport = "many"\n', "smtp.port"),
        ('[smtp]\nprotocol = "pop3"\n', "smtp.protocol"),
        ("[[mailboxes]]\naddress = 'not an address'\n", "mailboxes.0.address"),
        ("[[mailboxes]]\naddress = 'a@b.example'\ndefault_priority = 'urgentísimo'\n", "default_priority"),
        ("[tickets]\nnumber_prefix = 'T K'\n[[mailboxes]]\naddress = 'a@b.example'\n", "tickets.number_prefix"),
        ("[smtp]\nport = 25\n", "mailboxes"),
        ("[smtp\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert str(path) in str(error.value) and named in str(error.value)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SMTP__PORT", "abc")
    with pytest.raises(ConfigError, match="GATEWAY_SMTP__PORT"):
        load_settings(EXAMPLE)


def test_cli_exits_2_on_bad_config_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "missing.toml"), "serve"]) == 2
    assert "missing.toml: configuration file not found" in capsys.readouterr().err


def test_cli_without_any_config_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    assert main(["check-config"]) == 2
    assert "--config PATH or set GATEWAY_CONFIG" in capsys.readouterr().err


def test_check_config_prints_effective_settings(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("GATEWAY_SMTP__PORT", "2700")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert '"port": 2700' in out and "soporte.latam@estela.example" in out


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Soporte.Latam@Estela.Example", "soporte.latam@estela.example"),
        ("soporte.latam+TK-000123@estela.example", "soporte.latam@estela.example"),
        ("<soporte.latam+x+y@estela.example>", "soporte.latam@estela.example"),
    ],
)
def test_recipient_addresses_are_canonical(given: str, canonical: str) -> None:
    assert canonical_address(given) == canonical
