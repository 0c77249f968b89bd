"""The service files in contrib/ are what systemd and Docker accept, hardened as promised."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT

SERVICE = PROJECT / "contrib" / "ticket-gateway.service"
HARDENING = {
    "User": "ticket-gateway",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/ticket-gateway",
    "NoNewPrivileges": "true",
    "PrivateTmp": "true",
    "Restart": "on-failure",
}


def test_service_file_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]  # systemd keys are case-sensitive
    unit.read(SERVICE)
    service = dict(unit["Service"])
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert service["ExecStart"].endswith(" serve")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_service_file_without_a_warning(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists; the installed script is not here.
    text = SERVICE.read_text().replace("/opt/ticket-gateway/bin/ticket-gateway", "/bin/true")
    copy = tmp_path / "ticket-gateway.service"
    copy.write_text(text)
    checked = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr


def test_dockerfile_runs_serve_as_a_user_other_than_root() -> None:
    lines = (PROJECT / "contrib" / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.11-slim" in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert lines[-1] == 'CMD ["ticket-gateway", "serve"]'
