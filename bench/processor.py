"""`python -m bench.processor --mails 500`: the processor's own cost a mail, in one process.

N bench mails are spooled, then one `Pipeline` (one parser worker, no relay, no listener)
drains them here, so `time.process_time()` is the processor's CPU alone: its event loop
and its database thread. Every statement is counted where it reaches SQLite
(`_execute_all` of `gateway/storage/database.py`), with the trips to the database's thread
that carried them: the trips are counted, not timed, so they compare exactly between
runs and machines. `--statements` lists them, most frequent first.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path

import gateway.storage.database as database_module
from bench.drain import _spool
from bench.processes import write_config
from gateway.clock import SystemClock
from gateway.desk.pipeline import Pipeline
from gateway.settings import load_settings
from gateway.storage.database import Database, Statement


class Counted:
    """Counts what `_execute_all` is handed: statements by their SQL, and trips."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.trips = 0
        self._execute_all = database_module._execute_all

    def __call__(self, lock_file: int, statements: list[Statement], connection: sqlite3.Connection) -> object:
        self.trips += 1
        for statement in statements:
            text = (
                statement[0] if isinstance(statement, tuple) else getattr(statement, "text", type(statement).__name__)
            )
            self.statements[" ".join(text.split())[:100]] += 1
        return self._execute_all(lock_file, statements, connection)


async def measure(mails: int) -> tuple[float, float, Counted]:
    """(CPU ms a mail, mail/s, the statements counted) of a drain of `mails` spooled mails."""
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        path = Path(directory) / "bench.db"
        await _spool(path, mails)
        settings = load_settings(write_config(Path(directory), path, 1, 26 * 1024 * 1024))
        database = await Database.open(path, durable=False)
        pipeline = Pipeline(settings, database, SystemClock(), parse_workers=1)
        await pipeline.prepare()
        counted = Counted()
        database_module._execute_all = counted  # type: ignore[assignment]  # a bench's probe
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            await pipeline.drain()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            database_module._execute_all = counted._execute_all
            pipeline.parser.close()
            await database.close()
    return 1000 * cpu / mails, mails / wall, counted


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.processor", description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=500, help="mails spooled, then drained (500)")
    parser.add_argument("--statements", action="store_true", help="list the statements a mail runs")
    args = parser.parse_args()
    cpu, rate, counted = asyncio.run(measure(args.mails))
    total = sum(counted.statements.values())
    print(f"{args.mails} mails: processor CPU {cpu:.2f} ms a mail, {rate:.0f} mail/s (one parser worker)")
    print(f"{total / args.mails:.1f} statements a mail in {counted.trips / args.mails:.1f} trips to the database")
    if args.statements:
        for text, count in counted.statements.most_common():
            print(f"{count / args.mails:6.2f}  {text}")


if __name__ == "__main__":  # the parser worker is spawned: it imports this module, and must not run it
    main()
