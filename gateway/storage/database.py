"""The SQLite database: connection settings, schema, and explicit transactions.

Every connection runs in WAL mode; a durable one (the listener's) with `synchronous=FULL`,
so a COMMIT that returned is on disk: the listener relies on that before it answers 250.

SQLite lets one writer in at a time, and its own busy handler waits by sleeping in growing
steps (up to 100 ms a nap), which under load leaves mail waiting for a lock long released, and
let a busy writer in another process starve the listener. So every transaction first takes
our own write lock, which lets the next writer in within a millisecond of it being free: the
connections of one process queue for an asyncio.Lock in the event loop, and then for an
exclusive flock on `<database>.lock` across processes (the daemon, its processor, `ingest`,
the CLI). The flock gives up after the busy timeout, as SQLite would; SQLite's own busy
handler is left for anyone else (an admin's sqlite3 shell).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import aiosqlite

from gateway.storage.aiosqlite_adapter import run_on_thread
from gateway.storage.migrations import migrate
from gateway.storage.spool_file import attach, attach_desk, check_beside_desk, migrate_spool, spool_path

BUSY_TIMEOUT_MS = 5000
BEGIN, COMMIT, ROLLBACK = "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"
BLOB_PIECE_BYTES = 256 * 1024
NO_LOCK_FILE = -1  # a read-only connection never writes, so it takes no write lock


# Result codes (https://sqlite.org/rescode.html): the primary code is the low byte of an
# extended one (SQLITE_BUSY_SNAPSHOT is SQLITE_BUSY | 2 << 8).
WAIT_FOR_OTHERS = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})  # another writer holds it
OUT_OF_SPACE = frozenset({sqlite3.SQLITE_FULL})  # "database or disk is full": ENOSPC, or max_page_count


class WriteLockTimeoutError(sqlite3.OperationalError):
    """Our own write lock (the flock) was held elsewhere past the busy timeout: SQLITE_BUSY."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.sqlite_errorcode = sqlite3.SQLITE_BUSY
        self.sqlite_errorname = "SQLITE_BUSY"


def _primary_code(error: BaseException) -> int | None:
    if not isinstance(error, sqlite3.Error):
        return None
    code = getattr(error, "sqlite_errorcode", None)  # only on errors SQLite itself reported
    return code & 0xFF if isinstance(code, int) else None


def is_disk_full(error: BaseException) -> bool:
    """SQLite could not grow the database or its journal: fine again once space returns."""
    return _primary_code(error) in OUT_OF_SPACE


def is_temporary(error: BaseException) -> bool:
    """The same work succeeds later unchanged: the database is busy or locked, or the disk
    is full. Anything else (a syntax error, a missing column, an I/O error, a corrupt file)
    fails the same way every time, and retrying it forever hides it."""
    return _primary_code(error) in WAIT_FOR_OTHERS or is_disk_full(error)


@dataclass(frozen=True)
class Sql:
    """One SQL statement and its parameters. `name` lets the caller pick its results out
    of a batch (`Results.named`) instead of counting positions."""

    text: str
    params: tuple[object, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class FillBlob:
    """Follows an INSERT that gave `column` a `zeroblob()` of the source's size: writes the
    source into it in pieces, through SQLite's blob handle, if the INSERT made a row (an
    INSERT OR IGNORE may not). Bound as a parameter instead, a value is copied whole by
    SQLite and again into the row: a 25 MB mail would be held three times."""

    table: str
    column: str
    source: bytes | BinaryIO | Path


@dataclass(frozen=True)
class ReadBlob:
    """Follows a SELECT whose first row starts with a rowid of `table`: hands the blob to
    `sink` in pieces, on the database's thread, through SQLite's blob handle; a SELECT of
    the value would hold it whole twice, SQLite's copy and ours."""

    table: str
    column: str
    sink: Callable[[bytes], object]


# A plain `(sql, parameters)` pair is shorthand for `Sql(sql, parameters)`.
Statement = Sql | FillBlob | ReadBlob | tuple[str, tuple[object, ...]]


def fill_blob(table: str, column: str, source: bytes | BinaryIO | Path) -> FillBlob:
    return FillBlob(table, column, source)


def read_blob(table: str, column: str, sink: Callable[[bytes], object]) -> ReadBlob:
    return ReadBlob(table, column, sink)


@dataclass(frozen=True)
class Executed:
    """What one statement gave back."""

    rows: list[sqlite3.Row]
    lastrowid: int | None
    rowcount: int
    name: str = ""  # the statement's (`Sql.name`)


class Results(list[Executed]):
    """A batch's results, one per statement in order (a blob statement's is empty)."""

    def named(self, name: str) -> list[Executed]:
        """The results of the statements called `name`, in order."""
        return [executed for executed in self if executed.name == name]


class Database:
    """One SQLite connection. Steps that must not interleave each get their own; their
    writes all go through `transaction()`, under the process's shared write lock.

    Each trip to aiosqlite's thread costs far more than a statement (a thread hand-off
    each way, against a few µs), so statements travel in batches (see aiosqlite_adapter):
    `defer` holds a write whose result nobody waits for until the next statement that
    does, or the COMMIT, and they go to the thread together, in order.
    """

    def __init__(self, connection: aiosqlite.Connection, write_lock: asyncio.Lock, lock_file: int, path: Path) -> None:
        self.connection = connection
        self.path = path
        self.spool_file = False  # whether this is the spool file itself (spool_file.py)
        self.write_lock = write_lock
        self._lock_file = lock_file  # flocked from BEGIN to COMMIT or ROLLBACK, on the connection's thread
        self._deferred: list[Statement] = []

    @classmethod
    async def open(
        cls, path: Path, write_lock: asyncio.Lock | None = None, durable: bool = True, spool: bool = False
    ) -> Database:
        """`durable`: every COMMIT is on disk when it returns (the spool's must be). The
        pipeline's and relay's may wait for the next fsync: their input is durable already.
        `spool`: `path` is the spool file (spool_file.py) itself; else a desk database,
        which sees its spool file read-only as `intake`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if spool:
            await asyncio.to_thread(migrate_spool, path)
        else:
            await asyncio.to_thread(migrate, path)  # up to the schema's latest version (migrations.py)
            await asyncio.to_thread(migrate_spool, spool_path(path))
        # isolation_level=None: transactions are begun explicitly, never implicitly. A URI,
        # so that the spool file can be attached read-only.
        connection = await aiosqlite.connect(path.resolve().as_uri(), uri=True, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            for pragma in (
                f"busy_timeout = {BUSY_TIMEOUT_MS}",  # first: the others may wait for a lock
                "journal_mode = WAL",
                f"synchronous = {'FULL' if durable else 'NORMAL'}",
                "foreign_keys = ON",
            ):
                await connection.execute(f"PRAGMA {pragma}")
            await run_on_thread(connection, partial(attach_desk if spool else attach, path=path))
            lock_file = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except BaseException:
            await connection.close()  # else its thread keeps the process alive
            raise
        database = cls(connection, write_lock or asyncio.Lock(), lock_file, path)
        database.spool_file = spool
        return database

    @classmethod
    async def open_read_only(cls, path: Path) -> Database:
        """For commands that only look: creates nothing (no directory, file, schema, lock
        file). A path that holds no file is FileNotFoundError: a mistyped path must fail,
        not start an empty database beside the real one."""
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no database", str(path))
        # mode=ro: SQLite opens the file read-only and never creates it (SQLite URI filenames).
        uri = f"{path.resolve().as_uri()}?mode=ro"
        connection = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await asyncio.to_thread(check_beside_desk, spool_path(path))
            if spool_path(path).is_file():  # else a file from before it: check_readable says migrate
                await run_on_thread(connection, partial(attach, path=path))
        except BaseException:
            await connection.close()
            raise
        return cls(connection, asyncio.Lock(), NO_LOCK_FILE, path)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """BEGIN IMMEDIATE … COMMIT under the shared write lock; reads inside are current.
        The BEGIN travels with the first statement, deferred writes with the COMMIT."""
        async with self.write_lock:
            self.defer(BEGIN)
            try:
                yield self
                await self.execute(COMMIT)
            except BaseException:
                await self._roll_back()
                raise

    async def write(self, sql: str, parameters: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """One statement in a transaction of its own, in one trip; returns any rows it RETURNs."""
        [written] = await self.write_all([(sql, parameters)])
        return written.rows

    async def write_all(self, statements: Sequence[Statement]) -> Results:
        """Statements in a transaction of their own, in one trip; returns their results."""
        async with self.write_lock:
            try:
                results = await self.execute_all([(BEGIN, ()), *statements, (COMMIT, ())])
            except BaseException:
                await self._roll_back()
                raise
            return Results(results[1:-1])

    async def _roll_back(self) -> None:
        self._deferred.clear()
        if self.connection.in_transaction:  # not when the BEGIN never left, or itself failed
            await self.execute(ROLLBACK)

    def defer(self, statement: str | Statement, parameters: tuple[object, ...] = ()) -> None:
        """A write whose outcome nobody waits for: it goes with the next trip, in order.
        A failure shows there (at the latest at COMMIT) and rolls the transaction back.
        `statement` is SQL text (with `parameters`) or a statement of any kind."""
        self._deferred.append((statement, parameters) if isinstance(statement, str) else statement)

    async def execute(self, sql: str, parameters: tuple[object, ...] = ()) -> Executed:
        (executed,) = await self.execute_all([(sql, parameters)])
        return executed

    async def execute_all(self, statements: Sequence[Statement]) -> Results:
        """Run the deferred writes, then `statements`, in one trip; returns the latter's results."""
        deferred = len(self._deferred)
        batch, self._deferred = [*self._deferred, *statements], []
        results = await run_on_thread(self.connection, partial(_execute_all, self._lock_file, batch))
        return Results(results[deferred:])

    async def fetch_all(self, sql: str, parameters: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return (await self.execute(sql, parameters)).rows

    async def fetch_one(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Row | None:
        return next(iter(await self.fetch_all(sql, parameters)), None)

    async def read_blob_piece(self, table: str, column: str, rowid: int, offset: int) -> bytes:
        """BLOB_PIECE_BYTES of a stored value from `offset` (fewer at its end), through
        SQLite's blob handle, in one trip: a value read this way is never held whole."""
        return await run_on_thread(self.connection, partial(_blob_piece, table, column, rowid, offset))

    async def close(self) -> None:
        await self.connection.close()
        if self._lock_file != NO_LOCK_FILE:
            os.close(self._lock_file)


def _lock_for_writing(lock_file: int) -> None:
    """On the database's thread: the flock, waiting for a writer elsewhere in naps of at
    most a millisecond, for up to the busy timeout (then: a temporary error, as SQLite's)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    nap = 0.0001
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise WriteLockTimeoutError(
                    f"database is locked: another writer held it {BUSY_TIMEOUT_MS} ms"
                ) from None
            time.sleep(nap)
            nap = min(nap * 2, 0.001)


def _execute_all(lock_file: int, statements: list[Statement], connection: sqlite3.Connection) -> list[Executed]:
    """On the database's thread: each statement in turn, its rows fetched and cursor closed;
    the flock taken before a BEGIN and let go once the transaction is over."""
    results: list[Executed] = []
    try:
        for statement in statements:
            if isinstance(statement, FillBlob):
                _fill_blob(connection, results[-1], statement)
                results.append(Executed([], None, 0))
            elif isinstance(statement, ReadBlob):
                _read_blob(connection, results[-1], statement)
                results.append(Executed([], None, 0))
            elif isinstance(statement, Sql):
                results.append(_execute_one(connection, lock_file, statement.text, statement.params, statement.name))
            else:  # the shorthand pair, the most common statement: no object built for it
                results.append(_execute_one(connection, lock_file, *statement))
    finally:
        # aiosqlite's thread keeps its last call, arguments and all, until the next one: a
        # spooled 25 MB mail would stay in memory as long as the connection is idle.
        statements.clear()
    return results


def _execute_one(
    connection: sqlite3.Connection, lock_file: int, sql: str, parameters: tuple[object, ...], name: str = ""
) -> Executed:
    if sql == BEGIN:
        _lock_for_writing(lock_file)
    writing = sql == BEGIN or connection.in_transaction
    try:
        cursor = connection.execute(sql, parameters)
    finally:
        # Over: COMMIT, ROLLBACK, a BEGIN that failed, or SQLite rolling back by itself.
        if writing and not connection.in_transaction:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    try:
        return Executed(cursor.fetchall(), cursor.lastrowid, cursor.rowcount, name)
    finally:
        cursor.close()


def _fill_blob(connection: sqlite3.Connection, inserted: Executed, statement: FillBlob) -> None:
    if inserted.rowcount != 1 or inserted.lastrowid is None:
        return
    with connection.blobopen(statement.table, statement.column, inserted.lastrowid) as blob:
        for piece in _pieces(statement.source):
            blob.write(piece)


def _read_blob(connection: sqlite3.Connection, selected: Executed, statement: ReadBlob) -> None:
    if not selected.rows:
        return
    with connection.blobopen(statement.table, statement.column, selected.rows[0][0], readonly=True) as blob:
        for piece in iter(lambda: blob.read(BLOB_PIECE_BYTES), b""):
            statement.sink(piece)


def _blob_piece(table: str, column: str, rowid: int, offset: int, connection: sqlite3.Connection) -> bytes:
    with connection.blobopen(table, column, rowid, readonly=True) as blob:
        blob.seek(offset)
        return blob.read(BLOB_PIECE_BYTES)


def _pieces(source: bytes | BinaryIO | Path) -> Iterator[bytes | memoryview]:
    if isinstance(source, bytes):
        view = memoryview(source)
        yield from (view[start : start + BLOB_PIECE_BYTES] for start in range(0, len(view), BLOB_PIECE_BYTES))
    elif isinstance(source, Path):
        with source.open("rb") as file:
            yield from _pieces(file)
    else:
        yield from iter(lambda: source.read(BLOB_PIECE_BYTES), b"")
