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
from bench.load import send
from bench.prefill import prefill
from bench.processes import child, cpu_ms_per_mail, cpu_seconds, daemon, describe_cpu, wait_processed, write_config
from gateway.clock import SystemClock
from gateway.inbound.spool import Spool
from gateway.storage.database import Database


async def run_drain(args: argparse.Namespace) -> dict[str, Any]:
    mails = corpus(args.drain)
    with child("bench.servers", "bare") as (bare_process, bare_port):  # the yardstick: accepting only
        bare = await send(bare_port, mails, args.sessions, per_session=1)
        bare_cpu = 1000 * cpu_seconds(bare_process.pid) / len(mails)  # its start-up included: ≈ 0.3 s
    rates, cpu = {}, {}
    rates["empty database"], cpu["empty database"] = await _drain(args.drain, tickets=0)
    if args.tickets:
        name = f"{args.tickets:,} tickets"
        rates[name], cpu[name] = await _drain(args.drain, tickets=args.tickets)
    print(f"\ndrain: {args.drain:,} spooled mails processed by a fresh daemon, nothing else running")
    print(f"bare aiosmtpd accepting the same mails: {bare.rate:.0f} mail/s, CPU {bare_cpu:.2f} ms a mail")
    for name, rate in rates.items():
        print(f"{name:30} {rate:8.0f} mail/s {1000 / rate:8.2f} ms a mail {rate / bare.rate:7.0%} of bare")
        print(f"{'':30} CPU ms a mail: {describe_cpu(cpu[name])} ({cpu[name]['total'] / bare_cpu:.1f}x bare)")
    return {"mode": "drain", "mails": args.drain, "rates": rates, "bare_rate": bare.rate,
            "ratios": {name: rate / bare.rate for name, rate in rates.items()},
            "cpu_ms_per_mail": cpu, "bare_cpu_ms_per_mail": bare_cpu}  # fmt: skip


async def _drain(count: int, tickets: int) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, child("bench.servers", "sink") as (_, sink_port):
        database = Path(directory) / "bench.db"
        if tickets:
            prefill(database, tickets)
        await _spool(database, count)
        config = write_config(Path(directory), database, sink_port, 26 * 1024 * 1024, max_backlog=0)
        with daemon(config) as (_, _, family):
            started, cpu_before = time.time(), family.cpu()
            finished = await asyncio.to_thread(wait_processed, database, count)
            cpu = cpu_ms_per_mail(cpu_before, family.cpu(), count)
    return count / max(finished - started, 1e-9), cpu


async def _spool(database: Path, count: int) -> None:
    opened = await Database.open(database)
    try:
        spool = Spool(opened, SystemClock())
        await asyncio.gather(*(spool.add(mail.sender, [MAILBOX], "127.0.0.1", mail.raw) for mail in corpus(count)))
    finally:
        await opened.close()
