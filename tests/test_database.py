"""Statements travel to SQLite in batches: a transaction must still be all or nothing; and
writers in different processes take turns."""

import asyncio
import io
import sqlite3
from pathlib import Path

import pytest

import gateway.storage.database as database_module
from gateway.storage.database import Database, WriteLockTimeoutError, fill_blob, is_disk_full, is_temporary

INSERT_META = "INSERT INTO meta (name, value) VALUES (?, ?)"


@pytest.fixture
async def database(tmp_path: Path):
    opened = await Database.open(tmp_path / "gateway.db")
    yield opened
    await opened.close()


def committed_names(path: Path) -> list[str]:
    """What another connection sees: only what was committed."""
    with sqlite3.connect(path) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM meta ORDER BY name")]


async def test_a_deferred_write_is_read_back_inside_its_transaction_and_committed(database, tmp_path):
    async with database.transaction():
        database.defer(INSERT_META, ("a", "1"))
        row = await database.fetch_one("SELECT value FROM meta WHERE name = 'a'")
        assert row is not None and row["value"] == "1"
        assert committed_names(tmp_path / "gateway.db") == []
    assert committed_names(tmp_path / "gateway.db") == ["a"]


async def test_a_deferred_write_that_fails_at_commit_undoes_the_whole_transaction(database, tmp_path):
    async with database.transaction():
        database.defer(INSERT_META, ("taken", "1"))
    with pytest.raises(sqlite3.IntegrityError):
        async with database.transaction():
            await database.execute(INSERT_META, ("b", "2"))
            database.defer(INSERT_META, ("taken", "again"))  # primary key taken: fails with the COMMIT
    assert committed_names(tmp_path / "gateway.db") == ["taken"]
    await database.write(INSERT_META, ("c", "3"))  # the connection is usable again
    assert committed_names(tmp_path / "gateway.db") == ["c", "taken"]


async def test_an_error_before_the_first_trip_leaves_nothing_behind(database, tmp_path):
    with pytest.raises(RuntimeError):
        async with database.transaction():
            database.defer(INSERT_META, ("never", "1"))
            raise RuntimeError("the step failed before reading anything")
    assert not database.connection.in_transaction
    async with database.transaction():
        database.defer(INSERT_META, ("d", "4"))
    assert committed_names(tmp_path / "gateway.db") == ["d"]


async def test_a_failing_single_write_is_rolled_back(database, tmp_path):
    await database.write(INSERT_META, ("e", "5"))
    with pytest.raises(sqlite3.IntegrityError):
        await database.write(INSERT_META, ("e", "again"))
    assert not database.connection.in_transaction
    rows = await database.write("UPDATE meta SET value = '6' WHERE name = 'e' RETURNING value")
    assert [row["value"] for row in rows] == ["6"]


async def test_results_come_back_for_each_statement_of_a_batch(database):
    async with database.transaction():
        first, second, count = await database.execute_all(
            [(INSERT_META, ("f", "7")), (INSERT_META, ("g", "8")), ("SELECT count(*) AS n FROM meta", ())]
        )
    assert (first.rowcount, second.rowcount) == (1, 1)
    assert count.rows[0]["n"] == 2


async def test_a_blob_is_written_in_pieces_from_bytes_or_a_file_and_never_over_a_kept_row(database, tmp_path):
    big = bytes(range(256)) * 4096 + b"end"  # four pieces and a short one
    insert = "INSERT OR IGNORE INTO blobs (sha256, size, content) VALUES (?, ?, zeroblob(?))"
    async with database.transaction():
        await database.execute_all([(insert, ("a", len(big), len(big))), fill_blob("blobs", "content", big)])
        file = io.BytesIO(b"from a file")
        await database.execute_all([(insert, ("b", 11, 11)), fill_blob("blobs", "content", file)])
        await database.execute_all([(insert, ("a", 3, 3)), fill_blob("blobs", "content", b"new")])  # kept
    with sqlite3.connect(tmp_path / "gateway.db") as connection:
        stored = dict(connection.execute("SELECT sha256, content FROM blobs"))
    assert stored == {"a": big, "b": b"from a file"}


# Two connections with a write lock each stand for two processes (the daemon and its
# processor, or `ingest`): only the flock on <database>.lock keeps them apart.


@pytest.fixture
async def two_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 300)
    first, second = await Database.open(tmp_path / "gateway.db"), await Database.open(tmp_path / "gateway.db")
    yield first, second
    await first.close()
    await second.close()


async def test_a_writer_in_another_process_waits_for_the_transaction_then_goes_in(two_processes, tmp_path):
    first, second = two_processes
    async with first.transaction():
        await first.execute(INSERT_META, ("first", "1"))
        # It counts the rows it finds when it gets in: all of ours only if it came after our COMMIT.
        counting = "INSERT INTO meta (name, value) SELECT 'second', count(*) FROM meta"
        waiting = asyncio.create_task(second.write(counting))
        for name in ("a", "b", "c"):  # trips to SQLite's thread, while the other writer tries to get in
            await first.execute(INSERT_META, (name, "x"))
        assert not waiting.done()  # it waits for our COMMIT...
    await waiting  # ...and then goes in
    assert committed_names(tmp_path / "gateway.db") == ["a", "b", "c", "first", "second"]
    row = await second.fetch_one("SELECT value FROM meta WHERE name = 'second'")
    assert row is not None and row["value"] == "4"


async def test_a_transaction_held_past_the_busy_timeout_is_a_temporary_error_elsewhere(two_processes, tmp_path):
    first, second = two_processes
    async with first.transaction():
        await first.execute(INSERT_META, ("slow", "1"))
        with pytest.raises(WriteLockTimeoutError, match="database is locked"):
            await second.write(INSERT_META, ("impatient", "2"))
    await second.write(INSERT_META, ("later", "3"))  # nothing of the failed attempt is left holding on
    assert committed_names(tmp_path / "gateway.db") == ["later", "slow"]


async def test_a_rolled_back_transaction_lets_the_other_process_in(two_processes, tmp_path):
    first, second = two_processes
    await first.write(INSERT_META, ("taken", "1"))
    with pytest.raises(sqlite3.IntegrityError):
        async with first.transaction():
            await first.execute(INSERT_META, ("taken", "again"))
    await second.write(INSERT_META, ("next", "2"))  # would time out if the failure kept the lock
    assert committed_names(tmp_path / "gateway.db") == ["next", "taken"]


def sqlite_error(make_it_fail: str, *setup: str) -> sqlite3.Error:
    """The error SQLite itself raises for a statement, on a real (in-memory) database."""
    connection = sqlite3.connect(":memory:")
    for statement in setup:
        connection.execute(statement)
    try:
        connection.execute(make_it_fail)
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError(f"{make_it_fail!r} did not fail")


@pytest.mark.parametrize(
    ("error", "temporary", "disk_full"),
    [
        (sqlite_error("SELEC 1"), False, False),  # a syntax error fails the same way every time
        (sqlite_error("SELECT missing FROM sqlite_master"), False, False),  # a missing column
        (sqlite_error("INSERT INTO t VALUES (1)"), False, False),  # a missing table
        (
            sqlite_error("INSERT INTO t VALUES (zeroblob(100000))", "PRAGMA max_page_count = 2", "CREATE TABLE t (x)"),
            True,
            True,
        ),  # SQLITE_FULL: "database or disk is full"
        (WriteLockTimeoutError("database is locked"), True, False),  # our flock, past the busy timeout
        (sqlite3.OperationalError("disk I/O error"), False, False),  # no SQLite code: not known to pass
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False, False),
        (OSError(28, "No space left on device"), False, False),  # not SQLite's: the caller's to judge
    ],
)
def test_only_busy_locked_or_full_is_temporary(error: BaseException, temporary: bool, disk_full: bool) -> None:
    assert is_temporary(error) is temporary
    assert is_disk_full(error) is disk_full


def test_a_busy_database_raises_a_temporary_error(tmp_path):
    holder = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    holder.execute("BEGIN IMMEDIATE")  # an admin's sqlite3 shell holding the write lock
    other = sqlite3.connect(tmp_path / "gateway.db", timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as busy:
            other.execute("BEGIN IMMEDIATE")
        assert is_temporary(busy.value) and not is_disk_full(busy.value)
    finally:
        other.close()
        holder.close()
