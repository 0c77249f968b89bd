"""The one place that reaches into aiosqlite's internals (pyproject pins `aiosqlite<0.23`).

Borrowed: `Connection._execute(fn, *args)`, which queues a call for the connection's own
thread and awaits its result, and `Connection._conn`, the `sqlite3.Connection` that thread
owns. aiosqlite's public methods (`execute`, `executemany`, …) each make one trip to that
thread, and a trip (a thread hand-off each way) costs far more than a statement: the spool
commits a batch of mails as BEGIN, three statements per mail and COMMIT, and the flock of
our write lock must be taken on the same thread just before the BEGIN. Running a whole
batch as one call on the thread makes that one trip (figures in docs/performance.md).

tests/test_adapters.py fails, naming this module, when an installed aiosqlite no longer
has these with the signatures used here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import aiosqlite

BORROWED = ("Connection._execute", "Connection._conn")

Result = TypeVar("Result")


async def run_on_thread(connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], Result]) -> Result:
    """`work(sqlite3_connection)` on the connection's thread, in one trip: its result, or
    its exception. aiosqlite's thread holds its last call until the next one, so `work`
    lets go of large arguments (a spooled mail) itself before it returns."""
    result: Result = await connection._execute(_call_with_connection, connection, work)  # type: ignore[no-untyped-call]
    return result


def _call_with_connection(connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], Result]) -> Result:
    # On the thread: `_conn` is read here, where it is used, as aiosqlite's own calls do.
    return work(connection._conn)
