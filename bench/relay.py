"""`python -m bench.relay --mails 1000 --per-round 2`: the relay's own cost a mail, in one process.

A few bench mails go through the real pipeline once, for real notifications; their outbox
rows are copied (with new Message-IDs) up to N, and come due `--per-round` at a time every
`--every-ms`, as the processor queues them while it works through a backlog. The relay's
own loop (`Relay.run`) sends them as they come due, to a sink in a process of its own
(bench/servers.py), so `time.process_time()` is the relay's CPU alone: its event loop and
its database thread. Sessions are counted here, as the TCP connections the relay opened.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.drain import _spool
from bench.processes import child, write_config
from gateway.clock import SystemClock
from gateway.desk.pipeline import Pipeline
from gateway.outbound.relay import Relay, make_relay
from gateway.settings import Settings, load_settings
from gateway.storage.database import Database

SEED_MAILS = 40  # through the pipeline once; their notifications are copied up to --mails
EPOCH = "2000-01-01T00:00:00.000+00:00"  # the first rows come due then, on the relay's clock


class Connections:
    """Counts `socket.connect` calls (asyncio's `sock_connect` makes one a connection)."""

    def __init__(self) -> None:
        self.count = 0
        self._original = socket.socket.connect

    def __enter__(self) -> Connections:
        original = self._original

        def counted(sock: socket.socket, address: object) -> None:
            self.count += 1
            original(sock, address)  # type: ignore[arg-type]

        socket.socket.connect = counted  # type: ignore[method-assign]  # a bench's probe
        return self

    def __exit__(self, *exc_info: object) -> None:
        socket.socket.connect = self._original  # type: ignore[method-assign]


async def _fill(settings: Settings, database: Database, path: Path, rows: int) -> int:
    """Outbox rows of real notifications, `rows` of them; returns their mean size."""
    await _spool(path, SEED_MAILS)
    pipeline = Pipeline(settings, database, SystemClock(), parse_workers=1)
    await pipeline.prepare()
    try:
        await pipeline.drain()
    finally:
        pipeline.parser.close()
    columns = "ticket_id, template, envelope_from, recipients, raw, created_at, next_attempt_at, updated_at"
    while (have := (await database.fetch_one("SELECT count(*) AS n FROM outbox"))["n"]) < rows:
        await database.write(
            f"INSERT INTO outbox (message_id, {columns}) SELECT 'copy' || (id + ?) || '.' || message_id, {columns}"
            " FROM outbox ORDER BY id LIMIT ?",
            (have, rows - have),
        )
    return int((await database.fetch_one("SELECT avg(length(raw)) AS size FROM outbox"))["size"])


class Shifted:
    """The system clock, moved back to EPOCH at `start()`: the rows come due from then on."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def start(self) -> None:
        self.shift = datetime.now(UTC) - datetime.fromisoformat(EPOCH)

    def now(self) -> datetime:
        return datetime.now(UTC) - self.shift


async def _stagger(database: Database, per_round: int, every: float) -> None:
    """Rows 1 to per_round due at EPOCH, the next ones `every` seconds later, and so on."""
    await database.write(
        "UPDATE outbox SET next_attempt_at ="
        " strftime('%Y-%m-%dT%H:%M:%f', ?, '+' || (((id - 1) / ?) * ?) || ' seconds') || '+00:00'",
        (EPOCH, per_round, every),
    )


async def _run_rounds(relay: Relay, clock: Shifted, mails: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the relay's loop sending `mails` as they come due."""
    recorded, record = asyncio.Event(), relay.sent_log.record
    sent = 0

    def counted(*args: Any) -> None:  # a bench's probe: each 250, as the relay records it
        nonlocal sent
        record(*args)
        sent += 1
        recorded.set()

    relay.sent_log.record = counted  # type: ignore[method-assign]
    stopping = asyncio.Event()
    clock.start()
    cpu, wall = time.process_time(), time.perf_counter()
    running = asyncio.create_task(relay.run(stopping))
    while sent < mails:
        recorded.clear()
        await recorded.wait()
    stopping.set()
    await running
    return time.process_time() - cpu, time.perf_counter() - wall


async def measure(mails: int, per_round: int, every: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, child("bench.servers", "sink") as (_, port):
        path = Path(directory) / "bench.db"
        settings = load_settings(write_config(Path(directory), path, port, 26 * 1024 * 1024))
        database = await Database.open(path, durable=False)
        try:
            size = await _fill(settings, database, path, mails)
            await _stagger(database, per_round, every)
            clock = Shifted()
            relay = make_relay(settings, database, clock)
            with Connections() as connections:
                cpu, wall = await _run_rounds(relay, clock, mails)
            sent = (await database.fetch_one("SELECT count(*) AS n FROM outbox WHERE status = 'sent'"))["n"]
        finally:
            await database.close()
    print(f"{sent} of {mails} mails sent ({size:,} bytes each on average), {per_round} due every {every * 1000:g} ms,")
    print(
        f"over {connections.count} connections: relay CPU {1000 * cpu / mails:.2f} ms a mail, {mails / wall:.0f} mail/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000, help="outbox rows sent (1000)")
    parser.add_argument("--per-round", type=int, default=2, help="rows coming due together (2)")
    parser.add_argument("--every-ms", type=float, default=10.0, help="milliseconds between them (10)")
    args = parser.parse_args()
    asyncio.run(measure(args.mails, args.per_round, args.every_ms / 1000))


if __name__ == "__main__":  # the parser worker is spawned: it imports this module, and must not run it
    main()
