"""The relay's own record of what the relay accepted, written the moment it answers 250.

The outbox lives in the desk's database, whose write lock the processor holds for whole
transactions; a relay killed while it waited there after a 250 would send that mail again
on its next start. This file is the relay's alone and nobody locks it: a record is one
`write(2)` in append mode, so the window between the relay's 250 and a record that survives
a kill is the few microseconds between reading the reply and that write. The relay folds
the records into `outbox.status` afterwards (`Relay._reconcile`), and skips every mail
recorded here until then. A kill cannot lose a record; a power cut before the kernel
writes it back can (as it can the database's own unsynced commits): then, at worst, a
mail goes out twice, with the same Message-ID.

One relay at a time: a relay holds `<log>.lock` (flock) while it runs. After the daemon is
killed, its old relay lives on for up to a second (lifeline.py) beside the new one; two
relays would take the same due mail, and each would trust only its own record of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_CHECK_SECONDS = 0.1  # how often a relay waiting for another to end looks again


@dataclass(frozen=True)
class SentRecord:
    outbox_id: int
    message_id: str
    sent_at: str
    reply: str


class SentLog:
    """Records appended one line of JSON each; read back whole at start-up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[int, SentRecord] = {}  # sent, not yet in the outbox
        self._load()

    def _load(self) -> None:
        for record in self._read():
            self.pending[record.outbox_id] = record

    @contextlib.asynccontextmanager
    async def held(self, stopping: asyncio.Event) -> AsyncIterator[bool]:
        """The log for this relay alone, once any other relay is gone (False: stopped first).
        Read again once held: the other may have sent more."""
        descriptor = os.open(
            self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            while not _try_lock(descriptor):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), LOCK_CHECK_SECONDS)
                if stopping.is_set():
                    yield False
                    return
            self._load()
            yield True
        finally:
            os.close(descriptor)  # lets go of the flock

    def record(self, outbox_id: int, message_id: str, sent_at: str, reply: str) -> None:
        record = SentRecord(outbox_id, message_id, sent_at, reply)
        fields = {"outbox_id": outbox_id, "message_id": message_id, "sent_at": sent_at, "reply": reply}
        line = (json.dumps(fields, ensure_ascii=True) + "\n").encode("ascii")
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(descriptor, line)  # one write: a kill leaves all of it or nothing
        finally:
            os.close(descriptor)
        self.pending[outbox_id] = record

    def forget(self, outbox_ids: list[int]) -> None:
        """The outbox now holds these: drop them, and the file once nothing is pending."""
        for outbox_id in outbox_ids:
            self.pending.pop(outbox_id, None)
        if not self.pending:
            self.path.unlink(missing_ok=True)

    def _read(self) -> list[SentRecord]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(SentRecord(**json.loads(line)))
            except (ValueError, TypeError):  # not ours, or edited by hand: say so, keep the rest
                log.warning("%s line %d: not a sent record, ignored: %r", self.path, number, line[:200])
        return records


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
