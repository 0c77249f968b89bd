"""Child processes (the processor, parser workers) end when the daemon does, however it went."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.context import SpawnContext

PARENT_CHECK_SECONDS = 1.0


def spawn_context() -> SpawnContext:
    # spawn: a clean interpreter, not a fork of our threads; and with no fork server in
    # between, a child's parent is the daemon itself, which end_with_parent relies on.
    return multiprocessing.get_context("spawn")


def end_with_parent(parent_pid: int) -> None:
    """In a child: exit when `parent_pid` is gone, even after a SIGKILL. Pipes cannot tell:
    a spawned child may hold both ends of them."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
