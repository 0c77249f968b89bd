"""`python -m bench.parse --mails 1000`: the parser worker's CPU a mail, step by step, in one process.

Over the bench corpus (bench/corpus.py), each step timed with `time.process_time()`:
`parse_mail` alone; `read_mail` (parse, then the new part and its field lines); the whole
worker call (`parse_spooled`: the raw mail read from a spool in SQLite, parsed, large
attachments spilled) with the pickling of its result and its unpickling on the other side.
Then, with `--pool`, the processor's side of a one-worker process pool: its CPU (the event
loop's thread and the pool's management thread) while the worker parses every mail.
Only public names of gateway.parsing are called, so an older checkout is measured the same
way (`cd <checkout> && <worktree>/.venv/bin/python -m bench.parse`).
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.corpus import corpus
from bench.drain import _spool
from gateway.parsing import workers
from gateway.parsing.mail import parse_mail
from gateway.parsing.workers import Parser, parse_spooled, read_mail


def cpu_ms(count: int, step: Callable[[int], object], rounds: int) -> float:
    """The least CPU ms a mail of `rounds` runs of `step` over 0..count-1 (the others were disturbed)."""
    best = float("inf")
    for _ in range(rounds):
        re.purge()  # every mail's MIME boundary is new to the feed parser's re.compile
        began = time.process_time()
        for index in range(count):
            step(index)
        best = min(best, time.process_time() - began)
    return 1000 * best / count


async def pool_cpu(database: Path, count: int, batch: int) -> float:
    """The processor's CPU ms a mail while one worker parses `count` spooled mails, `batch` at a time."""
    parser = Parser(1, database)
    await parser.start(1, None)  # the worker's start-up is not a mail's
    began = time.process_time()
    for first in range(1, count + 1, batch):
        ids = range(first, min(first + batch, count + 1))
        await asyncio.gather(*(parser.start(spool_id, None) for spool_id in ids))
    spent = time.process_time() - began
    parser.close()
    return 1000 * spent / count


def main() -> None:
    options = argparse.ArgumentParser(prog="python -m bench.parse", description=__doc__.splitlines()[0])
    options.add_argument("--mails", type=int, default=1000, help="corpus mails (1000)")
    options.add_argument("--rounds", type=int, default=3, help="runs of each step; the least is printed (3)")
    options.add_argument("--pool", action="store_true", help="also the processor's side of a worker pool")
    args = options.parse_args()
    raws = [mail.raw for mail in corpus(args.mails)]
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as directory:
        database = Path(directory) / "bench.db"
        asyncio.run(_spool(database, args.mails))
        spill = Path(directory) / "spill"
        spill.mkdir()
        parsed = [parse_spooled(str(database), index + 1, str(spill), frozenset()) for index in range(args.mails)]
        pickled = [pickle.dumps(mail, pickle.HIGHEST_PROTOCOL) for mail in parsed]
        steps = {
            "parse_mail": lambda index: parse_mail(raws[index]),
            "read_mail (+ new part, fields)": lambda index: read_mail(raws[index]),
            "worker call (+ SQLite read, pickle)": lambda index: pickle.dumps(
                parse_spooled(str(database), index + 1, str(spill), frozenset()), pickle.HIGHEST_PROTOCOL
            ),
            "unpickling (the processor's side)": lambda index: pickle.loads(pickled[index]),
        }
        print(f"{args.mails} corpus mails, {sum(map(len, raws)) / args.mails / 1024:.1f} KB a mail on average")
        for name, step in steps.items():
            print(f"{name:40} {cpu_ms(args.mails, step, args.rounds):6.3f} CPU ms a mail")
        print(f"{'pickled result':40} {sum(map(len, pickled)) / args.mails / 1024:6.1f} KB a mail")
        if args.pool:
            for batch in (1, 8):
                cpu = asyncio.run(pool_cpu(database, args.mails, batch))
                print(f"{f'processor, pool of 1, {batch} in flight':40} {cpu:6.3f} CPU ms a mail")
    workers._connections.clear()


if __name__ == "__main__":  # the parser worker is spawned: it imports this module, and must not run it
    main()
