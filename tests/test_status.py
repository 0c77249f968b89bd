"""`ticket-gateway status` against a real daemon: what an operator and a monitor see."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from gateway.clock import SystemClock
from gateway.inbound.spool import Spool
from gateway.settings import load_settings
from gateway.storage.database import Database
from tests.conftest import make_mail, run_cli, write_config
from tests.support.daemon import start_daemon, wait_for_log

WAITING_CONFIG = """
[pipeline]
# The processor looks at the spool when the listener rings, else once an hour: mail put
# in the spool behind its back stays waiting for as long as the test needs.
poll_seconds = 3600

[health]
backlog_warning = 1
backlog_critical = 50
"""


async def spool_behind_the_daemons_back(config: Path, count: int = 1) -> None:
    """Mail in the spool as `ingest` leaves it when it cannot process it, with no ring."""
    database = await Database.open(load_settings(config).database.path)
    try:
        spool = Spool(database, SystemClock())
        for index in range(count):
            await spool.add(
                "c@empresa.example", ["soporte.latam@estela.example"], "stdin", make_mail(f"espera {index}")
            )
    finally:
        await database.close()


def status(config: Path, *args: str) -> tuple[int, str]:
    result = run_cli(config, "status", *args)
    return result.returncode, result.stdout.decode()


def test_a_healthy_daemon_is_ok_in_text_and_json(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = start_daemon(config)
    try:
        code, text = status(config)
        json_code, raw = status(config, "--json")
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait()
    assert code == 0, text
    assert text.splitlines()[0] == "OK"
    assert f"listener   OK        127.0.0.1:{daemon.port} answers: 220 mx.test.example" in text
    assert f"processor {daemon.children['processor']}, relay {daemon.children['relay']} alive" in text
    report = json.loads(raw)
    assert json_code == 0 and report["status"] == "ok"
    assert report["daemon"]["pid"] == daemon.process.pid
    assert report["backlog"] == {"waiting": 0, "oldest_received_at": None, "oldest_minutes": None}
    assert report["outbox"]["last_sent_at"] is None and report["database"]["free_bytes"] > 0
    assert report["database"]["bytes"] > 0 and report["database"]["spool_bytes"] > 0  # the raw mail's file
    assert not (tmp_path / "gateway.db.daemon.json").exists()  # a clean stop leaves no state behind


async def test_mail_waiting_past_the_threshold_is_a_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + WAITING_CONFIG)
    daemon = start_daemon(config)
    # Its first look at the spool may come after the mail is put there: held still, the
    # processor is alive (status sees it) and the mail stays waiting, whatever the timing.
    processor = daemon.children["processor"]
    os.kill(processor, signal.SIGSTOP)
    try:
        await spool_behind_the_daemons_back(config, 2)
        code, text = status(config)
        json_code, raw = status(config, "--json")
    finally:
        os.kill(processor, signal.SIGCONT)
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait()
    assert code == 1, text
    assert text.splitlines()[0].startswith("WARNING: backlog: 2 mail waiting to be processed, the oldest for")
    assert "  daemon     OK" in text
    report = json.loads(raw)
    assert json_code == 1 and report["status"] == "warning"
    assert report["backlog"]["waiting"] == 2
    assert {check["name"]: check["level"] for check in report["checks"]}["backlog"] == "warning"


async def test_a_dead_listener_with_mail_waiting_is_critical(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = start_daemon(config)
    daemon.process.send_signal(signal.SIGKILL)  # no clean stop: its state file stays, naming the dead
    daemon.process.wait()
    await spool_behind_the_daemons_back(config)  # as `ingest` does, with nobody to process it
    code, text = status(config)
    json_code, raw = status(config, "--json")
    assert code == 2, text
    assert text.splitlines()[0].startswith("CRITICAL: listener: 127.0.0.1:0 does not answer")
    assert "daemon     CRITICAL  not running, and 1 mail waiting: start `ticket-gateway serve`" in text
    report = json.loads(raw)
    assert json_code == 2 and report["status"] == "critical"
    assert report["listener"]["answers"] is False and report["daemon"]["running"] is False


def test_status_creates_no_database(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli(config, "status")
    assert result.returncode == 66
    assert f"no database at {tmp_path / 'gateway.db'}" in result.stderr.decode()
    assert not (tmp_path / "gateway.db").exists()


def test_the_example_health_thresholds_load() -> None:
    from tests.conftest import PROJECT

    health = load_settings(PROJECT / "config.example.toml").health
    assert (health.backlog_warning, health.backlog_critical) == (100, 1000)


def test_a_stopped_daemon_logs_stopped(tmp_path: Path) -> None:
    """The state file goes with a clean stop; the log still ends with the daemon's last word."""
    config = write_config(tmp_path)
    daemon = start_daemon(config)
    assert json.loads((tmp_path / "gateway.db.daemon.json").read_text())["port"] == daemon.port
    daemon.process.send_signal(signal.SIGTERM)
    assert b"gateway.daemon: stopped" in wait_for_log(daemon, rb"stopped$")
    daemon.process.wait()
    assert not (tmp_path / "gateway.db.daemon.json").exists()
