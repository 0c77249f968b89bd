"""What `serve` tells `status` about itself: a small JSON file beside the database.

`<database>.daemon.json` holds the daemon's pid, where it listens (the real port, also
when the configuration says 0), the pids of its children (written again whenever one is
started again) and the metrics endpoint. It is replaced whole (write, then rename), so a
reader never sees half of it, and removed at a clean stop; after a crash it stays, and its
pids name processes that are gone, which is what `status` reports.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


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
    draft = path.with_name(path.name + ".new")
    draft.write_text(json.dumps(asdict(state)) + "\n")
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
