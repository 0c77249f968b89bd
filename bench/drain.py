"""Drain mode, `python -m bench --drain 1000 [--tickets 1000000]`: the pipeline alone.

N mails are put in the spool before the daemon starts (as after an MTA flushes a backlog
or the daemon was down); then `ticket-gateway serve` starts with a sink relay and the
time until every mail is processed is taken. No load generator runs meanwhile, so the
figure is steadier than the full bench's on a shared machine. With `--tickets`, the same
is done once on an empty database and once on a pre-filled one.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import MAILBOX, corpus
from bench.prefill import prefill
from bench.processes import child, daemon, wait_processed, write_config
from gateway.clock import SystemClock
from gateway.inbound.spool import Spool
from gateway.storage.database import Database


async def run_drain(args: argparse.Namespace) -> dict[str, Any]:
    rates = {"empty database": await _drain(args.drain, tickets=0)}
    if args.tickets:
        rates[f"{args.tickets:,} tickets"] = await _drain(args.drain, tickets=args.tickets)
    print(f"\ndrain: {args.drain:,} spooled mails processed by a fresh daemon, nothing else running")
    for name, rate in rates.items():
        print(f"{name:30} {rate:8.0f} mail/s {1000 / rate:8.2f} ms a mail")
    return {"mode": "drain", "mails": args.drain, "rates": rates}


async def _drain(count: int, tickets: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, child("bench.servers", "sink") as (_, sink_port):
        database = Path(directory) / "bench.db"
        if tickets:
            prefill(database, tickets)
        await _spool(database, count)
        config = write_config(Path(directory), database, sink_port, 26 * 1024 * 1024, max_backlog=0)
        with daemon(config):
            started = time.time()
            finished = await asyncio.to_thread(wait_processed, database, count)
    return count / max(finished - started, 1e-9)


async def _spool(database: Path, count: int) -> None:
    opened = await Database.open(database)
    try:
        spool = Spool(opened, SystemClock())
        await asyncio.gather(*(spool.add(mail.sender, [MAILBOX], "127.0.0.1", mail.raw) for mail in corpus(count)))
    finally:
        await opened.close()
