"""A parser worker's stand-in for tests of gateway.parsing.worker_pool: importable by a
spawned process without the test suite's fixtures."""

from __future__ import annotations

import os


class PoolWork:
    """Answers a spool id with that many bytes; raises for `raises`, and ends its own
    process for `kills`, as a crash in a C extension or the kernel's OOM killer would."""

    def __init__(self, raises: int = -1, kills: int = -1) -> None:
        self.raises, self.kills = raises, kills

    def __call__(self, spool_id: int) -> bytes:
        if spool_id == self.kills:
            os._exit(1)
        if spool_id == self.raises:
            raise ValueError(f"cannot parse {spool_id}")
        return b"x" * spool_id  # past a pipe's capacity (64 KB), a reply comes in pieces
