"""The processes a benchmark run starts: the bare server and sink, and the real daemon."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO

from gateway.storage.spool_file import attach

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05
PROCESSING_TIMEOUT = 600.0
CONFIG = """
[smtp]
host = "127.0.0.1"
port = 0
max_message_size = {max_size}
hostname = "mx.bench.example"
# Every load session comes from 127.0.0.1, as every session from a Postfix in front would.
max_connections_per_client = 1000
max_connections = 1000
[database]
path = "{db}"
[logging]
level = "WARNING"
[limits]
new_tickets_per_sender_per_hour = 1000000
[pipeline]
max_backlog = {max_backlog}
[outbound]
host = "127.0.0.1"
port = {relay_port}
[agents]
notify_address = "agentes@estela.example"
addresses = ["csoto@estela.example"]
[[mailboxes]]
address = "soporte.latam@estela.example"
name = "Soporte LATAM"
country = "CL"
brand = "Estela"
product = "Estela ERP"
"""


def write_config(directory: Path, database: Path, relay_port: int, max_size: int, max_backlog: int = 5000) -> Path:
    path = directory / "bench.toml"
    path.write_text(CONFIG.format(db=database, relay_port=relay_port, max_size=max_size, max_backlog=max_backlog))
    return path


@contextmanager
def child(module: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None
    try:
        yield process, int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


@contextmanager
def daemon(config: Path, log_to: Path | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int, Family]]:
    """The real daemon on `config`, and its processes (`Family`: their peak RSS, their CPU);
    its log is read (into `log_to`, when given) so its pipe never fills."""
    env = {**os.environ, "GATEWAY_LOGGING__LEVEL": "INFO"}  # the "listening on" line
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "serve"], stderr=subprocess.PIPE, cwd=ROOT, env=env
    )
    assert process.stderr is not None
    port, children = 0, {}
    for line in process.stderr:
        if started := re.search(rb"(\w+) started, pid (\d+)", line):  # the processor, the relay
            children[int(started[2])] = started[1].decode()
        if b"listening on" in line:
            port = int(line.split(b"listening on ")[1].split(b" ")[0].rsplit(b":", 1)[1])
            break
    if not port:
        raise SystemExit(f"the daemon did not start (exit {process.wait()})")
    copier = threading.Thread(target=_copy_log, args=(process.stderr, log_to), daemon=True)
    copier.start()

    try:
        yield process, port, Family(process.pid, children)
    finally:
        process.terminate()
        process.wait(timeout=60)
        copier.join(timeout=10)


def _copy_log(stream: IO[bytes], path: Path | None) -> None:
    if path is None:
        stream.read()
        return
    with path.open("ab") as file:
        while chunk := stream.read1(64 * 1024):  # type: ignore[attr-defined]  # a BufferedReader
            file.write(chunk)


class Family:
    """The daemon's processes: `names` maps the pids the daemon logged to their roles."""

    def __init__(self, pid: int, names: dict[int, str]) -> None:
        self.pid = pid
        self.names = names

    def peak_rss(self) -> dict[str, int]:
        return family_peak_rss(self.pid, self.names)

    def cpu(self) -> CpuSample:
        """CPU seconds (user + system) each process has used so far, with its role."""
        return {member: (self.names.get(member) or _role(member, depth), cpu_seconds(member))
                for member, depth in _family(self.pid)}  # fmt: skip


CpuSample = dict[int, tuple[str, float]]  # pid → (role, CPU seconds so far)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        # The command name in parentheses may hold spaces: the fields after it are fixed.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_ms_per_mail(before: CpuSample, after: CpuSample, mails: int) -> dict[str, float]:
    """CPU milliseconds a mail between two samples, summed by role, and their "total". A
    process started between them counts from its start (its imports: ≈ 0.5 s, spread
    over the mails); one gone by `after` is missed."""
    by_role: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        used = seconds - before.get(pid, (role, 0.0))[1]
        by_role[role] = by_role.get(role, 0.0) + 1000 * used / max(mails, 1)
    by_role.pop("resource tracker", None)  # multiprocessing's bookkeeping: idle, not ours
    return {**by_role, "total": sum(by_role.values())}


def describe_cpu(per_mail: dict[str, float]) -> str:
    return ", ".join(f"{role} {ms:.2f}" for role, ms in per_mail.items())


def family_peak_rss(pid: int, names: dict[int, str]) -> dict[str, int]:
    """Peak RSS in KB of a process and each under it (the daemon's processor, relay and
    parser workers), summed by role (`names`: pid → role, as the daemon logged them).
    Their sum is an upper bound: their peaks need not coincide."""
    peaks: dict[str, int] = {}
    for member, depth in _family(pid):
        role = names.get(member) or _role(member, depth)
        peaks[role] = peaks.get(role, 0) + _status_kb(member, "VmHWM")
    return peaks


class RssSampler:
    """The highest total RSS of a process and all under it at one moment, sampled every
    0.1 s: the memory the daemon really held at once (a spike between samples is missed)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_kb = max(self.peak_kb, sum(_status_kb(member, "VmRSS") for member, _ in _family(self.pid)))


def describe_rss(peaks: dict[str, int]) -> str:
    parts = ", ".join(f"{role} {kb / 1024:.0f}" for role, kb in peaks.items())
    return f"{sum(peaks.values()) / 1024:.0f} MB ({parts})"


def _family(pid: int) -> list[tuple[int, int]]:
    """(pid, depth) of a process and all its descendants."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name in parentheses may hold spaces: the fields after it are fixed.
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    family, frontier, depth = [(pid, 0)], [pid], 0
    while frontier:
        depth += 1
        frontier = [child for child, parent in parents.items() if parent in frontier]
        family += [(child, depth) for child in frontier]
    return family


def _role(pid: int, depth: int) -> str:
    with contextlib.suppress(OSError):
        if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return "resource tracker"
    return ("listener", "child started later")[depth] if depth < 2 else "parser worker"


def _status_kb(pid: int, field: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone meanwhile
        return 0
    return int(next((line.split()[1] for line in status.splitlines() if line.startswith(field + ":")), 0))


def wait_processed(database: Path, count: int) -> float:
    """Poll until `count` spool rows are finished; returns the wall clock when they were."""
    deadline = time.monotonic() + PROCESSING_TIMEOUT
    with sqlite3.connect(database) as connection:
        while time.monotonic() < deadline:
            (finished,) = connection.execute(
                "SELECT count(*) FROM spool WHERE status IN ('done', 'ignored', 'failed')"
            ).fetchone()
            if finished >= count:
                (last,) = connection.execute("SELECT max(updated_at) FROM spool").fetchone()
                return datetime.fromisoformat(last).timestamp()
            time.sleep(POLL_SECONDS)
    raise SystemExit(f"processing did not finish within {PROCESSING_TIMEOUT:.0f} s")


def spool_counts(connection: sqlite3.Connection) -> tuple[int, int]:
    """(accepted, waiting): mail spooled so far, and mail spooled but not yet processed."""
    # The mail the desk has not copied yet is in the spool file only (storage/spool_file.py).
    [(path,)] = [row[2:] for row in connection.execute("PRAGMA database_list") if row[1] == "main"]
    with contextlib.closing(sqlite3.connect(Path(path).resolve().as_uri(), uri=True)) as both:
        attach(both, Path(path))
        (accepted,) = both.execute("SELECT coalesce(max(id), 0) FROM inbound").fetchone()
        (waiting,) = both.execute("SELECT count(*) FROM inbound WHERE status IN ('queued', 'processing')").fetchone()
    return accepted, waiting
