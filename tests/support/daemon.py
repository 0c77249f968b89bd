"""The daemon as an operator starts it, `python -m gateway serve`, read through its log."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

from tests.conftest import PROJECT, spool_rows


class Daemon(NamedTuple):
    process: subprocess.Popen[bytes]
    port: int
    children: dict[str, int]  # pid of the processor and of the relay
    log: queue.Queue[bytes]  # its log lines from "listening on" on


def start_daemon(
    config: Path, environment: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
) -> Daemon:
    """`python -m gateway serve` as a child process, as its log tells of it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "serve"],
        stderr=subprocess.PIPE,
        cwd=PROJECT,
        env={**os.environ, **(environment or {})},
        preexec_fn=preexec_fn,  # e.g. a lowered open-file limit
    )
    assert process.stderr is not None
    children = {}
    for line in process.stderr:
        if started := re.search(rb"(\w+) started, pid (\d+)", line):
            children[started[1].decode()] = int(started[2])
        if b"listening on" in line:
            port = int(line.split(b"listening on ")[1].split(b" ")[0].rsplit(b":", 1)[1])
            # Keep reading its log, or a full pipe would block the daemon.
            log: queue.Queue[bytes] = queue.Queue()
            threading.Thread(target=_forward, args=(process.stderr, log), daemon=True).start()
            return Daemon(process, port, children, log)
    raise AssertionError(f"daemon did not start, exit {process.wait()}")


def _forward(stream: IO[bytes], log: queue.Queue[bytes]) -> None:
    for line in stream:
        log.put(line)


def wait_for_log(daemon: Daemon, pattern: bytes, seconds: float = 60) -> bytes:
    """The daemon's next log line matching `pattern` (its processor and relay log there too)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            line = daemon.log.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise AssertionError(f"no log line like {pattern!r} within {seconds} s") from None
        if re.search(pattern, line):
            return line


def spool_statuses(database: Path) -> list[str]:
    return [row["status"] for row in spool_rows(database)]
