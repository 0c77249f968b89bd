"""`ticket-gateway status [--json]`: is the gateway healthy, for a person and for a monitor.

It looks, and changes nothing: the listener must greet with 220, the daemon and its
children (state_file.py) must be alive, and the queues, the database's size and the free
disk are read over a read-only connection (exit 66 when the path holds no database, as
every read-only command). Exit status 0 OK, 1 warning, 2 critical (the Nagios plugin
convention), against `[health]`; a mail waiting with no daemon running is critical, since
nothing will process it (a pipe deployment spools through `ingest` and still needs `serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.read_only import open_read_only
from gateway.runtime.state_file import DaemonState, is_alive, read_intake_states, read_state, state_path
from gateway.settings import HealthSettings, Settings
from gateway.storage.spool_file import spool_path

OK, WARNING, CRITICAL = 0, 1, 2
LEVELS = ("OK", "WARNING", "CRITICAL")
MIB = 1024 * 1024
BACKLOG_SQL = "SELECT count(*) AS n, min(received_at) AS oldest FROM inbound WHERE status IN ('queued', 'processing')"
FAILED_INBOUND_SQL = "SELECT count(*) AS n FROM inbound WHERE status = 'failed'"
# Deferred: still queued after a temporary failure (attempts counted) or an unreachable relay (noted).
OUTBOX_SQL = (
    "SELECT coalesce(sum(status = 'queued'), 0) AS queued,"
    " coalesce(sum(status = 'queued' AND (attempts > 0 OR relay_reply IS NOT NULL)), 0) AS deferred,"
    " coalesce(sum(status = 'failed'), 0) AS failed, max(sent_at) AS last_sent_at FROM outbox"
)
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # a bound wildcard answers on loopback


@dataclass(frozen=True)
class Check:
    name: str
    level: int
    detail: str


def add_status_command(command: Any) -> None:
    status = command("status", run_status, "check the gateway's health: exit 0 OK, 1 warning, 2 critical")
    status.add_argument("--json", action="store_true", help="one JSON object, for a program")


async def run_status(settings: Settings, args: argparse.Namespace) -> int:
    facts = await gather(settings)
    checks = judge(facts, settings.health)
    level = max(check.level for check in checks)
    if args.json:
        report = {"status": LEVELS[level].lower(), "checks": [_as_json(check) for check in checks], **facts}
        print(json.dumps(report, indent=2))
    else:
        print(_headline(level, checks))
        for check in checks:
            print(f"  {check.name:<10} {LEVELS[check.level]:<8}  {check.detail}")
    return level


async def gather(settings: Settings) -> dict[str, Any]:
    """What status reports, as plain data (the --json object's fields beside "checks")."""
    path = settings.database.path
    async with open_read_only(settings) as reader:  # first: no database, exit 66, nothing probed
        database = reader.spool.database
        backlog = await database.fetch_one(BACKLOG_SQL)
        failed = await database.fetch_one(FAILED_INBOUND_SQL)
        outbox = await database.fetch_one(OUTBOX_SQL)
    assert backlog is not None and failed is not None and outbox is not None  # aggregates give one row
    state = read_state(state_path(path))
    running = state is not None and is_alive(state.pid)
    oldest = backlog["oldest"]
    return {
        "listener": await _probe_listener(settings, state if running else None),
        "daemon": _daemon(state, running),
        "backlog": {"waiting": backlog["n"], "oldest_received_at": oldest, "oldest_minutes": _minutes_since(oldest)},
        "inbound": {"failed": failed["n"]},
        "outbox": dict(outbox),
        "imap": read_intake_states(path),
        "database": {
            "path": str(path),
            "bytes": _with_wal(path),
            "spool_bytes": _with_wal(spool_path(path)),  # the raw mail, most of it
            "free_bytes": shutil.disk_usage(path.parent).free,
        },
    }


def _with_wal(path: Path) -> int:
    """A SQLite file's bytes on disk, with what waits in its write-ahead log."""
    return sum(file.stat().st_size for file in (path, path.with_name(path.name + "-wal")) if file.exists())


def _daemon(state: DaemonState | None, running: bool) -> dict[str, Any]:
    if state is None:
        return {"running": False, "pid": None, "children": {}}
    children = {name: {"pid": pid, "alive": running and is_alive(pid)} for name, pid in state.children.items()}
    return {"running": running, "pid": state.pid, "started_at": state.started_at, "children": children}


async def _probe_listener(settings: Settings, state: DaemonState | None) -> dict[str, Any]:
    """Connect where the running daemon listens (else where the configuration says), read the greeting."""
    host, port = (state.host, state.port) if state is not None else (settings.smtp.host, settings.smtp.port)
    host = ANY_ADDRESS.get(host, host)
    answer: dict[str, Any] = {"address": f"{host}:{port}", "answers": False, "greeting": None, "error": None}
    try:
        async with asyncio.timeout(settings.health.connect_timeout_seconds):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                greeting = (await reader.readline()).decode("ascii", "replace").strip()
                writer.write(b"QUIT\r\n")
                await writer.drain()
            finally:
                writer.close()
    except TimeoutError:
        answer["error"] = f"no greeting within {settings.health.connect_timeout_seconds:g} s"
    except OSError as error:
        answer["error"] = error.strerror or str(error)
    else:
        answer.update(greeting=greeting, answers=greeting.startswith("220"))
    return answer


def judge(facts: dict[str, Any], health: HealthSettings) -> list[Check]:
    """The checks, each OK, WARNING or CRITICAL, against `[health]`."""
    listener, daemon, backlog, outbox = facts["listener"], facts["daemon"], facts["backlog"], facts["outbox"]
    waiting, oldest = backlog["waiting"], backlog["oldest_minutes"]
    free_mib = facts["database"]["free_bytes"] / MIB
    checks = [
        Check("listener", OK if listener["answers"] else CRITICAL, _listener_detail(listener)),
        _daemon_check(daemon, waiting),
        Check(
            "backlog",
            max(
                _level(waiting, health.backlog_warning, health.backlog_critical),
                _level(oldest or 0, health.oldest_waiting_warning_minutes, health.oldest_waiting_critical_minutes),
            ),
            f"{waiting} mail waiting to be processed" + (f", the oldest for {oldest:.1f} min" if waiting else ""),
        ),
        Check(
            "inbound",
            _level(facts["inbound"]["failed"], health.failed_inbound_warning, 0),
            f"{facts['inbound']['failed']} failed (ticket-gateway inbound list --status failed)",
        ),
        Check(
            "outbox",
            max(
                _level(outbox["failed"], health.failed_outbox_warning, 0),
                _level(outbox["deferred"], health.deferred_outbox_warning, health.deferred_outbox_critical),
            ),
            f"{outbox['queued']} queued, {outbox['deferred']} deferred, {outbox['failed']} failed;"
            f" last delivery {outbox['last_sent_at'] or 'never'}",
        ),
        Check(
            "disk",
            _level(-free_mib, -health.free_disk_warning_mib, -health.free_disk_critical_mib),
            f"database {facts['database']['bytes'] / MIB:.1f} MiB, raw mail"
            f" {facts['database']['spool_bytes'] / MIB:.1f} MiB, {free_mib:.0f} MiB free",
        ),
    ]
    checks += [_imap_check(name, source) for name, source in sorted(facts["imap"].items())]
    return checks


def _imap_check(name: str, source: dict[str, Any]) -> Check:
    """An IMAP source that cannot log in or reach its server brings no mail at all."""
    fetched = f"last fetch {source.get('last_fetch_at') or 'never'}"
    if source.get("connected"):
        return Check(name, OK, f"connected; {fetched}")
    if source.get("last_error"):
        return Check(name, CRITICAL, f"not connected: {source['last_error']}; {fetched}")
    return Check(name, WARNING, f"not connected; {fetched}")


def _daemon_check(daemon: dict[str, Any], waiting: int) -> Check:
    if not daemon["running"]:
        if waiting:
            return Check("daemon", CRITICAL, f"not running, and {waiting} mail waiting: start `ticket-gateway serve`")
        return Check("daemon", CRITICAL, "not running")
    children = daemon["children"]
    dead = [name for name, child in children.items() if not child["alive"]]
    pids = ", ".join(f"{name} {child['pid']}" for name, child in children.items())
    if dead or not children:
        return Check("daemon", CRITICAL, f"pid {daemon['pid']}; not alive: {', '.join(dead) or 'its children'}")
    return Check("daemon", OK, f"pid {daemon['pid']}; {pids} alive")


def _level(value: float, warning: float, critical: float) -> int:
    """At or past `critical` (unless 0: off) CRITICAL, at or past `warning` WARNING. Negated
    values and thresholds make "at or under" (free disk) read the same way."""
    if critical and value >= critical:
        return CRITICAL
    if warning and value >= warning:
        return WARNING
    return OK


def _listener_detail(listener: dict[str, Any]) -> str:
    if listener["answers"]:
        return f"{listener['address']} answers: {listener['greeting']}"
    return f"{listener['address']} does not answer: {listener['error'] or listener['greeting']}"


def _minutes_since(moment: str | None) -> float | None:
    if moment is None:
        return None
    return max((datetime.now(UTC) - datetime.fromisoformat(moment)).total_seconds() / 60, 0.0)


def _headline(level: int, checks: list[Check]) -> str:
    problems = [f"{check.name}: {check.detail}" for check in checks if check.level == level and level != OK]
    return f"{LEVELS[level]}" + (f": {'; '.join(problems)}" if problems else "")


def _as_json(check: Check) -> dict[str, Any]:
    return {**asdict(check), "level": LEVELS[check.level].lower()}
