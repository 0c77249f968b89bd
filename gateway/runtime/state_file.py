"""What `serve` tells `status` about itself: small JSON files beside the database.

`<database>.daemon.json` holds the daemon's pid, where it listens (the real port, also
when the configuration says 0), the pids of its children (written again whenever one is
started again) and the metrics endpoint. It is replaced whole (write, then rename), so a
reader never sees half of it, and removed at a clean stop; after a crash it stays, and its
pids name processes that are gone, which is what `status` reports.

`<database>.intake.json` holds each IMAP source's last known state (connected, its last
error, its last fetch), written by the sources in the listener's process.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import Clock, timestamp


@dataclass(frozen=True)
class DaemonState:
    pid: int
    host: str
    port: int
    started_at: str
    children: dict[str, int] = field(default_factory=dict)  # "processor", "relay": pid
    metrics: str = ""  # "host:port" of /metrics, or ""


def state_path(database: Path) -> Path:
    return database.with_name(database.name + ".daemon.json")


def write_state(path: Path, state: DaemonState) -> None:
    _replace(path, json.dumps(asdict(state)) + "\n")


def _replace(path: Path, text: str) -> None:
    """Write, then rename into place: a reader sees the old file or the new one, whole."""
    draft = path.with_name(path.name + ".new")
    draft.write_text(text)
    os.replace(draft, path)


def read_state(path: Path) -> DaemonState | None:
    """The state a daemon wrote, or None: none written, or not one we can read."""
    try:
        data = json.loads(path.read_text())
        return DaemonState(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove_state(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_alive(pid: int) -> bool:
    """Whether a process `pid` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


def intake_state_path(database: Path) -> Path:
    return database.with_name(database.name + ".intake.json")


def read_intake_states(database: Path) -> dict[str, dict[str, Any]]:
    """Each IMAP source's last known state, by name: what `status` shows."""
    try:
        states: dict[str, dict[str, Any]] = json.loads(intake_state_path(database).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return states


class IntakeStates:
    """The sources' states, rewritten whole on each change."""

    def __init__(self, database: Path, clock: Clock) -> None:
        self.path = intake_state_path(database)
        self.clock = clock
        self.rows: dict[str, dict[str, Any]] = {}

    def update(self, source: str, **fields: Any) -> None:
        row = self.rows.setdefault(source, {"connected": False, "last_error": None, "last_fetch_at": None})
        row.update(fields, pid=os.getpid(), updated_at=timestamp(self.clock.now()))
        _replace(self.path, json.dumps(self.rows, indent=1, sort_keys=True))
