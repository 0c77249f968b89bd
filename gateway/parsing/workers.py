"""Parsing in worker processes, beside the daemon's event loop.

The parser's CPU leaves the loop; a worker reads the raw mail from the spool itself, so a
25 MB mail never passes through the daemon to be parsed; and a mail that kills a worker
fails alone (it is tried once more in a new worker; worker_pool.py). Workers exit when the
daemon does, however it went.

A large attachment comes back as a file (`SpilledFile`) rather than through the result
pipe: pickled, sent and unpickled there, it would cost the processor more than twice its
size (docs/performance.md). The files live in a directory of the parser's own, removed when it closes;
one left by a killed processor is removed by the next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.model import Attachment, ParsedMail, SpilledFile
from gateway.parsing.mail import ParseError, parse_mail
from gateway.parsing.quotes import new_part
from gateway.parsing.worker_pool import WorkerPool
from gateway.rules.fields import field_lines
from gateway.runtime.state_file import is_alive
from gateway.storage.spool_file import read_only_uri, spool_path

SPILL_BYTES = 1024 * 1024  # attachments larger than this come back from a worker as files


class Parser:
    """Parses in worker processes (`workers` > 0) or in this one. In workers, the parser's
    CPU is off the event loop, the raw mail is read by the worker itself (a 25 MB mail
    never passes through the daemon to be parsed), and a mail that kills a worker fails
    alone: it is tried once more in a new worker before it is given up (worker_pool.py)."""

    def __init__(self, workers: int, database: Path, ours: frozenset[str] = frozenset()) -> None:
        self.workers = workers
        self.ours = ours  # the desk's addresses: their mail forwarded back is history (quotes.py)
        self.database = str(database)
        self.spill_directory = database.with_name(database.name + ".attachments") / str(os.getpid())
        self._pool: WorkerPool[ParsedMail] | None = None

    def start(self, spool_id: int, raw: bytes | None) -> asyncio.Future[ParsedMail]:
        """Parse a spooled mail: in a worker, which reads it; or here, from `raw`."""
        loop = asyncio.get_running_loop()
        if not self.workers:
            assert raw is not None, "parsing in this process needs the raw mail"
            future: asyncio.Future[ParsedMail] = loop.create_future()
            try:
                future.set_result(read_mail(raw, self.ours))
            except Exception as error:
                future.set_exception(error)
            return future
        return self._ensure_pool().submit(spool_id)

    def _ensure_pool(self) -> WorkerPool[ParsedMail]:
        if self._pool is None:
            _remove_stale_spill_directories(self.spill_directory.parent)
            self.spill_directory.mkdir(parents=True, exist_ok=True)
            self._pool = WorkerPool(self.workers, SpoolParser(self.database, str(self.spill_directory), self.ours))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        shutil.rmtree(self.spill_directory, ignore_errors=True)


def discard_spilled(mail: ParsedMail) -> None:
    """Remove the files of a parsed mail's large attachments, once it is stored or given up."""
    for attachment in mail.attachments:
        if isinstance(attachment.content, SpilledFile):
            attachment.content.path.unlink(missing_ok=True)


def _remove_stale_spill_directories(parent: Path) -> None:
    for directory in parent.glob("*"):  # named after the pid of the processor that made it
        if directory.name.isdigit() and not is_alive(int(directory.name)):
            shutil.rmtree(directory, ignore_errors=True)


def read_mail(raw: bytes, ours: frozenset[str] = frozenset()) -> ParsedMail:
    """Parse, then do the text work the desk needs: the new part without quoted history,
    and its field lines. All of it linear in the mail's size, and here, where parsing is,
    never in the pipeline's transaction while the database is locked for writing."""
    mail = parse_mail(raw)
    text = new_part(mail.text, mail.html, mail.has_text_part, subject=mail.subject, ours=ours)
    if text == mail.text:
        text = mail.text  # one object: pickled once on its way back from a worker
    return dataclasses.replace(mail, new_part=text, field_lines=field_lines(text))


@dataclass(frozen=True)
class SpoolParser:
    """What a worker runs for each spool id it is sent (pickled once, when it starts)."""

    database: str
    spill_directory: str
    ours: frozenset[str]

    def __call__(self, spool_id: int) -> ParsedMail:
        return parse_spooled(self.database, spool_id, self.spill_directory, self.ours)


def parse_spooled(database: str, spool_id: int, spill_directory: str, ours: frozenset[str]) -> ParsedMail:
    """In a parser worker: read one spooled mail (read-only), parse it, spill what is large."""
    mail = read_mail(_read_raw(database, spool_id), ours)
    return dataclasses.replace(mail, attachments=tuple(_spilled(a, spill_directory) for a in mail.attachments))


def _spilled(attachment: Attachment, directory: str) -> Attachment:
    if attachment.size <= SPILL_BYTES:
        return attachment
    descriptor, name = tempfile.mkstemp(suffix=".part", dir=directory)
    with os.fdopen(descriptor, "wb") as file:
        file.write(attachment.read())
    return dataclasses.replace(attachment, content=SpilledFile(Path(name), attachment.size, attachment.sha256))


def _read_raw(database: str, spool_id: int) -> bytes:
    # Through SQLite's blob handle: a SELECT would hold the mail twice, SQLite's copy and ours.
    connection = _read_only(database)
    try:
        with connection.blobopen("spool_raw", "raw", spool_id, readonly=True) as blob:
            return blob.read()
    except sqlite3.Error as error:
        _connections.pop(database, None)  # whatever went wrong, the next mail opens the file afresh
        connection.close()
        if isinstance(error, sqlite3.OperationalError):  # no such row
            raise ParseError(f"spool row {spool_id} has no raw mail ({error})") from None
        raise


# A worker's read-only connection, kept between mails: opening one (and reading the schema
# on its first statement) costs about a tenth of parsing a mail (docs/performance.md). It
# holds no transaction between mails (autocommit; a blob handle's read ends as it closes),
# so it blocks no checkpoint, and each read sees the latest commit (SQLite's WAL readers).
_connections: dict[str, sqlite3.Connection] = {}


def _read_only(database: str) -> sqlite3.Connection:
    if database not in _connections:
        # The raw mail is in the spool file beside the desk's (storage/spool_file.py).
        _connections[database] = sqlite3.connect(read_only_uri(spool_path(Path(database))), uri=True)
    return _connections[database]
