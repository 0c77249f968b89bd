"""`python -m bench`: the real daemon against the framework's own limit, in one run.

Starts a bare aiosmtpd (answers 250, does nothing) and the real `ticket-gateway serve` on a
fresh database with a sink relay, sends both the same load, and prints each figure with its
ratio to the bare server's rate. Results are also saved as JSON. Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.corpus import corpus, large_mail
from bench.drain import run_drain
from bench.fuzz import run_fuzz
from bench.load import LoadResult, percentile, send
from bench.prefill import prefill
from bench.processes import (
    ROOT,
    RssSampler,
    child,
    cpu_ms_per_mail,
    cpu_seconds,
    daemon,
    describe_cpu,
    describe_rss,
    wait_processed,
    write_config,
)
from bench.quotes import main as quotes_main
from bench.sustained import run_sustained

RESULTS = ROOT / "bench" / "results"


def main() -> int:
    if sys.argv[1:2] == ["quotes"]:  # no daemon, no JSON: the score on tests/quote_cases.py
        return quotes_main(sys.argv[2:], prog="python -m bench quotes")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["fuzz", "quotes"],
        help="fuzz: --mails mutated real-world mails (bench/fuzz.py); quotes: the new part's score on the "
        "quote table [--failures] (bench/quotes.py)",
    )
    parser.add_argument("--seed", type=int, default=24, help="fuzz mode's random seed (24)")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent SMTP sessions (50)")
    parser.add_argument("--mails", type=int, default=3000, help="mails per phase (3000)")
    parser.add_argument("--tickets", type=int, default=0, help="pre-fill the database with this many tickets")
    parser.add_argument("--large", action="store_true", help="large-mail mode: 10 senders x 25 MB, peak RSS")
    parser.add_argument("--large-mb", type=int, default=25, help="size of a mail in large-mail mode (25)")
    parser.add_argument(
        "--sustained",
        type=int,
        default=0,
        metavar="N",
        help="sustained mode: N mails at full speed, the backlog sampled until it drains",
    )
    parser.add_argument(
        "--drain",
        type=int,
        default=0,
        metavar="N",
        help="drain mode: N mails spooled first, then processed by the daemon alone",
    )
    parser.add_argument("--max-backlog", type=int, default=5000, help="the daemon's [pipeline] max_backlog (5000)")
    parser.add_argument("--json", type=Path, default=None, help="where to save the results (bench/results/)")
    args = parser.parse_args()
    mode = args.mode or ("large" if args.large else "sustained" if args.sustained else "drain" if args.drain else "")
    runs = {"large": run_large, "sustained": run_sustained, "drain": run_drain, "fuzz": run_fuzz, "": run}
    results = asyncio.run(runs[mode](args))
    path = args.json or RESULTS / f"{datetime.now():%Y%m%d-%H%M%S}{'-' + mode if mode else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"\nsaved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    mails = corpus(args.mails * 3)
    first, second, paced_mails = mails[: args.mails], mails[args.mails : 2 * args.mails], mails[2 * args.mails :]
    with child("bench.servers", "bare") as (bare_process, bare_port):
        bare_cpu = cpu_seconds(bare_process.pid)
        bare_one = await send(bare_port, first, args.sessions, per_session=1)
        bare_twenty = await send(bare_port, second, args.sessions, per_session=20)
        bare_cpu = 1000 * (cpu_seconds(bare_process.pid) - bare_cpu) / len(first + second)
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, child("bench.servers", "sink") as (_, sink_port):
        database = Path(directory) / "bench.db"
        if args.tickets:
            began = time.perf_counter()
            prefill(database, args.tickets)
            print(f"pre-filled {args.tickets:,} tickets in {time.perf_counter() - began:.0f} s", flush=True)
        config = write_config(Path(directory), database, sink_port, 26 * 1024 * 1024, args.max_backlog)
        with daemon(config) as (_, port, family):
            cpu_before = family.cpu()
            one = await send(port, first, args.sessions, per_session=1)
            processed_one = wait_processed(database, len(first))
            twenty = await send(port, second, args.sessions, per_session=20)
            processed_twenty = wait_processed(database, len(first) + len(second))
            cpu = cpu_ms_per_mail(cpu_before, family.cpu(), len(first + second))
            paced_rate = 0.8 * max(one.rate, twenty.rate)
            paced = await send(port, paced_mails, args.sessions, per_session=1, rate=paced_rate)
            wait_processed(database, len(mails))
            latencies = processing_latencies(database, paced)
            rss = sum(family.peak_rss().values())
    with child("bench.servers", "bare") as (_, bare_port):  # the same pace, for its latencies
        bare_paced = await send(bare_port, paced_mails, args.sessions, per_session=1, rate=paced_rate)
    loads = Loads(bare_one, bare_twenty, bare_paced, one, twenty, paced)
    return report(args, loads, processed_one, processed_twenty, latencies, rss, {"bare aiosmtpd": bare_cpu, **cpu})


@dataclass
class Loads:
    bare_one: LoadResult
    bare_twenty: LoadResult
    bare_paced: LoadResult
    one: LoadResult
    twenty: LoadResult
    paced: LoadResult


def report(
    args: argparse.Namespace, loads: Loads, processed_one: float, processed_twenty: float, latencies: list[float],
    rss: int, cpu: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    bare_one, bare_twenty, one, twenty, paced = loads.bare_one, loads.bare_twenty, loads.one, loads.twenty, loads.paced
    processed_rate_one = one.accepted / max(processed_one - one.started, 1e-9)
    processed_rate_twenty = twenty.accepted / max(processed_twenty - twenty.started, 1e-9)
    rows = [
        ("accepted mail/s, 1 per session", bare_one.rate, one.rate, one.rate / bare_one.rate),
        ("accepted mail/s, 20 per session", bare_twenty.rate, twenty.rate, twenty.rate / bare_twenty.rate),
        ("processed mail/s, 1 per session", bare_one.rate, processed_rate_one, processed_rate_one / bare_one.rate),
        ("processed mail/s, 20 per session", bare_twenty.rate, processed_rate_twenty,
         processed_rate_twenty / bare_twenty.rate),
    ]  # fmt: skip
    setup = f"{args.mails} mails a phase, {args.sessions} sessions, {args.tickets:,} tickets pre-filled"
    print(f"\n{setup}, {os.cpu_count()} cores")
    print(f"{'':34} {'bare aiosmtpd':>14} {'ticket-gateway':>15} {'ratio':>7}")
    for name, bare, gateway, ratio in rows:
        print(f"{name:34} {bare:14.0f} {gateway:15.0f} {ratio:7.0%}")
    figures = {
        "p50 DATA→250 ms (full load)": 1000 * percentile(one.data_latencies, 0.50),
        "p99 DATA→250 ms (full load)": 1000 * percentile(one.data_latencies, 0.99),
        f"paced at {paced.rate:.0f} mail/s (80% of peak): p50 DATA→250 ms": 1000
        * percentile(paced.data_latencies, 0.5),
        "paced: p99 DATA→250 ms": 1000 * percentile(paced.data_latencies, 0.99),
        "paced: p50 250→processed ms": 1000 * percentile(latencies, 0.5),
        "paced: p99 250→processed ms": 1000 * percentile(latencies, 0.99),
        "bare aiosmtpd p99 DATA→250 ms": 1000 * percentile(bare_one.data_latencies, 0.99),
        "daemon peak RSS MB": rss / 1024,
    }
    bare_figures = {  # the bare server's figure for the same load, where it has one
        "p50 DATA→250 ms (full load)": 1000 * percentile(bare_one.data_latencies, 0.50),
        "p99 DATA→250 ms (full load)": 1000 * percentile(bare_one.data_latencies, 0.99),
        next(iter(name for name in figures if name.startswith("paced at"))): 1000
        * percentile(loads.bare_paced.data_latencies, 0.5),
        "paced: p99 DATA→250 ms": 1000 * percentile(loads.bare_paced.data_latencies, 0.99),
    }
    print(f"\n{'':60} {'bare':>9} {'gateway':>9} {'ratio':>7}")
    for name, value in figures.items():
        reference = bare_figures.get(name)
        compared = f"{reference:9.1f} {value:9.1f} {value / reference:7.1f}x" if reference else f"{'':9} {value:9.1f}"
        print(f"{name:60} {compared}")
    print(f"\nCPU ms a mail over the 1- and 20-per-session phases: {describe_cpu(cpu)}")
    print(f"all gateway processes / bare aiosmtpd: {cpu['total'] / cpu['bare aiosmtpd']:.1f}x")
    refused = one.refused + twenty.refused + paced.refused
    if refused or one.errors:
        print(f"refused: {refused}; first errors: {(one.errors + twenty.errors + paced.errors)[:3]}")
    return {
        "mails_per_phase": args.mails, "sessions": args.sessions, "prefilled_tickets": args.tickets,
        "rates": [dict(zip(("name", "bare", "gateway", "ratio"), row, strict=True)) for row in rows],
        "figures": figures, "bare_figures": bare_figures, "cpu_ms_per_mail": cpu, "refused": refused,
    }  # fmt: skip


async def run_large(args: argparse.Namespace) -> dict[str, Any]:
    senders, size = 10, args.large_mb * 1024 * 1024
    mails = [large_mail(index, size) for index in range(senders)]
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, child("bench.servers", "sink") as (_, sink_port):
        database = Path(directory) / "bench.db"
        config = write_config(Path(directory), database, sink_port, max_size=size + size // 2)
        with daemon(config) as (process, port, family), RssSampler(process.pid) as sampler:
            result = await send(port, mails, sessions=senders, per_session=1)
            wait_processed(database, len(mails))
            peaks = family.peak_rss()
    print(f"\nlarge-mail mode: {senders} concurrent senders x {len(mails[0].raw) / 1e6:.1f} MB")
    print(f"accepted {result.accepted}/{len(mails)} in {result.seconds:.1f} s")
    print(f"peak RSS, each process's own peak summed: {describe_rss(peaks)}")
    print(f"peak RSS, highest total at one moment (sampled every 0.1 s): {sampler.peak_kb / 1024:.0f} MB")
    if result.errors:
        print(f"errors: {result.errors[:3]}")
    return {"mode": "large", "senders": senders, "mail_bytes": len(mails[0].raw), "accepted": result.accepted,
            "seconds": result.seconds, "peak_rss_mb": sum(peaks.values()) / 1024,
            "peak_rss_at_once_mb": sampler.peak_kb / 1024,
            "peak_rss_mb_by_process": {role: kb / 1024 for role, kb in peaks.items()}}  # fmt: skip


def processing_latencies(database: Path, load: LoadResult) -> list[float]:
    """Seconds from each mail's 250 to its spool row being done, from the daemon's own clock."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT m.message_id, s.updated_at FROM messages m JOIN spool s ON s.id = m.spool_id"
        ).fetchall()
    done_at = {message_id: datetime.fromisoformat(at).timestamp() for message_id, at in rows}
    return [done_at[mid] - at for mid, at in load.accepted_at.items() if mid in done_at]


if __name__ == "__main__":
    sys.exit(main())
