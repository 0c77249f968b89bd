"""Sustained mode, `python -m bench --sustained 20000`: does processing keep up for long?

The same N mails go first to the bare aiosmtpd, then at full speed to the daemon over
one-mail sessions. Senders retry a 4xx a second later, as an MTA would (sooner than most,
to keep the pressure on), so the daemon's flow control (`451 4.3.2` past `max_backlog`
waiting mails) is part of what is measured. Every second the spool is sampled: mail
accepted so far, and the backlog — accepted but not yet processed.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import corpus
from bench.load import LoadResult, send
from bench.processes import child, cpu_ms_per_mail, daemon, describe_cpu, spool_counts, wait_processed, write_config

SAMPLE_SECONDS = 1.0
RETRY_AFTER_SECONDS = 1.0
Sample = tuple[float, int, int]  # seconds since the load began, accepted, waiting


async def run_sustained(args: argparse.Namespace) -> dict[str, Any]:
    mails = corpus(args.sustained)
    with child("bench.servers", "bare") as (_, bare_port):
        bare = await send(bare_port, mails, args.sessions, per_session=1)
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, child("bench.servers", "sink") as (_, sink_port):
        database = Path(directory) / "bench.db"
        config = write_config(Path(directory), database, sink_port, 26 * 1024 * 1024, args.max_backlog)
        with daemon(config) as (_, port, family):
            samples: list[Sample] = []
            began = time.time()
            sampling = asyncio.create_task(_sample(database, began, samples))
            cpu_before = family.cpu()
            load = await send(port, mails, args.sessions, per_session=1, retry_after=RETRY_AFTER_SECONDS)
            drained_at = await asyncio.to_thread(wait_processed, database, len(mails))
            cpu = cpu_ms_per_mail(cpu_before, family.cpu(), len(mails))
            sampling.cancel()
            with sqlite3.connect(database) as connection:
                samples.append((time.time() - began, *spool_counts(connection)))
            rss = sum(family.peak_rss().values())
    return _report(args, bare, load, samples, drained_at, rss, cpu)


async def _sample(database: Path, began: float, samples: list[Sample]) -> None:
    while not database.exists():
        await asyncio.sleep(SAMPLE_SECONDS)
    with sqlite3.connect(database) as connection:
        while True:
            samples.append((time.time() - began, *spool_counts(connection)))
            await asyncio.sleep(SAMPLE_SECONDS)


def steady_rate(samples: list[Sample], total: int) -> float:
    """Processed mail/s between 10 % and 90 % processed: the pace once started, before the tail."""
    processed = [(at, accepted - waiting) for at, accepted, waiting in samples]
    start = next(((at, done) for at, done in processed if done >= 0.1 * total), None)
    end = next(((at, done) for at, done in processed if done >= 0.9 * total), None)
    if start is None or end is None or end[0] <= start[0]:
        return float("nan")
    return (end[1] - start[1]) / (end[0] - start[0])


def _report(
    args: argparse.Namespace, bare: LoadResult, load: LoadResult, samples: list[Sample], drained_at: float, rss: int,
    cpu: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    total = len(load.accepted_at)
    processed_rate = total / max(drained_at - load.started, 1e-9)
    steady = steady_rate(samples, args.sustained)
    peak_backlog = max((waiting for _, _, waiting in samples), default=0)
    print(f"\nsustained: {args.sustained:,} mails at full speed, {args.sessions} sessions, "
          f"max_backlog {args.max_backlog:,}")  # fmt: skip
    print(f"{'':44} {'mail/s':>8} {'ratio to bare':>14}")
    rows = [
        ("bare aiosmtpd, accepted", bare.rate),
        ("ticket-gateway, accepted (incl. 451 pauses)", load.rate),
        ("ticket-gateway, processed, start to drained", processed_rate),
        ("ticket-gateway, processed, 10 % → 90 %", steady),
    ]
    for name, rate in rows:
        print(f"{name:44} {rate:8.0f} {rate / bare.rate:14.0%}")
    print("\n   s  accepted   backlog")
    for at, accepted, waiting in samples[:: max(1, len(samples) // 15)] + samples[-1:]:
        print(f"{at:4.0f} {accepted:9,} {waiting:9,}")
    figures = {
        "peak backlog (mails accepted, not yet processed)": peak_backlog,
        "451 answers retried by the senders": load.deferred,
        "last mail accepted → backlog drained, s": drained_at - load.finished,
        "daemon peak RSS MB": rss / 1024,
    }
    for name, value in figures.items():
        print(f"{name:60} {value:9.1f}")
    print(f"CPU ms a mail, from the first mail sent to the backlog drained: {describe_cpu(cpu)}")
    if load.refused or load.errors:
        print(f"refused: {load.refused}; first errors: {load.errors[:3]}")
    return {
        "mode": "sustained", "mails": args.sustained, "sessions": args.sessions, "max_backlog": args.max_backlog,
        "rates": [{"name": name, "rate": rate, "ratio": rate / bare.rate} for name, rate in rows],
        "figures": figures, "cpu_ms_per_mail": cpu, "refused": load.refused, "accepted": total, "samples": samples,
    }  # fmt: skip
