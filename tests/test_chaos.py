"""SIGKILL of the listener, the processor and the relay at seeded moments, under load.

The real `serve` runs as a child process behind a fixed port; four senders behave as an MTA
does (a refused connection, a hang-up or a 4xx is tried again; only a 250 counts as
delivered). At moments drawn from a fixed seed, one of the daemon's processes is killed
with SIGKILL; a killed listener takes its children with it and is started again. In the
end every mail that got a 250 is one ticket, no mail is stored twice, and the
notifications reach the sink relay once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import MAILBOX, PROJECT, Sink, free_port, make_mail, write_config

SEED = 1913
MAILS = 240
SENDERS = 4
KILLS = ("processor", "relay", "listener", "relay", "processor", "listener", "relay")
SETTLE_SECONDS = 240  # a bound on the whole run, far above what it needs


class RunningDaemon:
    """`python -m gateway serve` on a fixed port; the pids of its children, as its log tells them."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.port = port
        self.children: dict[str, int] = {}
        self.lock = threading.Lock()
        self.listening = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.listening.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config), "serve"],
            stderr=subprocess.PIPE,
            cwd=PROJECT,
            env={**os.environ, "GATEWAY_SMTP__PORT": str(self.port), "GATEWAY_PIPELINE__POLL_SECONDS": "0.2"},
        )
        threading.Thread(target=self._read_log, args=(self.process,), daemon=True).start()
        if not self.listening.wait(60):
            raise AssertionError("the daemon did not start listening")

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if started := re.search(rb"(\w+) started, pid (\d+)", line):
                with self.lock:
                    self.children[started[1].decode()] = int(started[2])
            if b"listening on" in line:
                self.listening.set()
            if b"Traceback" in line or b"ERROR" in line:
                sys.stderr.write(line.decode(errors="replace"))

    def kill(self, which: str) -> None:
        assert self.process is not None
        if which == "listener":
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.start()
            return
        with self.lock:
            pid = self.children[which]
        with contextlib.suppress(ProcessLookupError):  # already being started again
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def deliver_like_an_mta(port: int, raw: bytes, sender: str, stop: threading.Event) -> None:
    """Send until a 250: what a sending MTA does with a 4xx, a refused connection or a hang-up."""
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.sendmail(sender, [MAILBOX], raw)
            return
        except (OSError, smtplib.SMTPException) as error:
            if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500:
                raise
            stop.wait(0.05)  # an MTA's retry interval, shortened


@pytest.mark.slow
async def test_kills_at_seeded_moments_lose_nothing_and_duplicate_nothing(tmp_path: Path, relay: Sink) -> None:
    chooser = random.Random(SEED)
    kill_after = sorted(chooser.sample(range(20, MAILS - 20), len(KILLS)))
    config = write_config(tmp_path, relay_port=relay.port)
    daemon = RunningDaemon(config, free_port())
    await asyncio.to_thread(daemon.start)

    mails = [
        (f"cliente{index}@empresa.example", make_mail(
            f"Caso {index}", sender=f"Cliente {index} <cliente{index}@empresa.example>",
            message_id=f"<chaos-{index}@empresa.example>",
        ))
        for index in range(MAILS)
    ]  # fmt: skip
    accepted: list[int] = []
    giving_up = threading.Event()
    next_mail = iter(range(MAILS))
    taking = threading.Lock()
    killed = threading.Condition()

    def sender() -> None:
        while True:
            with taking:
                index = next(next_mail, None)
            if index is None:
                return
            address, raw = mails[index]
            deliver_like_an_mta(daemon.port, raw, address, giving_up)
            with killed:
                accepted.append(index)
                killed.notify_all()

    def killer() -> None:
        for which, after in zip(KILLS, kill_after, strict=True):
            with killed:
                killed.wait_for(lambda after=after: len(accepted) >= after or giving_up.is_set())
            if giving_up.is_set():
                return
            daemon.kill(which)

    try:
        workers = [asyncio.to_thread(sender) for _ in range(SENDERS)]
        async with asyncio.timeout(SETTLE_SECONDS):
            await asyncio.gather(asyncio.to_thread(killer), *workers)
            # An acknowledgement to every customer and a notice to the agents per ticket.
            await relay.handler.wait_until(lambda: len(relay.received) >= 2 * MAILS, SETTLE_SECONDS)
    finally:
        giving_up.set()
        exit_code = await asyncio.to_thread(daemon.stop)
    assert exit_code == 0
    assert sorted(accepted) == list(range(MAILS))

    with sqlite3.connect(tmp_path / "gateway.db") as connection:
        statuses = Counter(status for (status,) in connection.execute("SELECT status FROM spool"))
        stored = Counter(
            message_id for (message_id,) in connection.execute(
                "SELECT message_id FROM messages WHERE direction = 'inbound'"
            )
        )  # fmt: skip
        tickets = connection.execute("SELECT count(*) FROM tickets").fetchone()[0]
    assert set(statuses) <= {"done"}, statuses  # nothing failed, nothing left behind
    assert tickets == MAILS
    assert sorted(stored) == sorted(f"chaos-{index}@empresa.example" for index in range(MAILS))
    assert max(stored.values()) == 1

    sent_ids = Counter(mail.message["Message-ID"] for mail in relay.received)
    assert [message_id for message_id, count in sent_ids.items() if count > 1] == []
    assert len(sent_ids) == 2 * MAILS  # an acknowledgement and the agents' notice per ticket
