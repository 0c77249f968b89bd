"""Logging as the daemon and its child processes write it: one format, to stderr.

Repeats under attack: a connection flood, a dead relay or a full disk make the same line
happen thousands of times a minute (an open-file exhaustion makes asyncio write tracebacks
fast enough to fill a disk: docs/performance.md).
`collapse_repeats(logger)` makes a logger write each kind of line (same logger, level
and message template, i.e. its first line, before %-arguments) at most once per window:
the first at once, later ones counted, and the count written as one line "... (N more
like this in the last 60 s)" when the window ends, so a flood that goes on writes one
line a minute per kind. Attach it to a logger whose every line may repeat like that; for
one noisy call site in a busy logger, log through a
child logger of its own: `collapse_repeats(logging.getLogger(__name__ + ".refusals"))`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

REPEAT_WINDOW_SECONDS = 60.0
_SUMMARY = "_collapsed_summary"  # set on the summary records the filter writes itself


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO; our own lines say what an operator needs.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # asyncio's exception-handler lines (a transport's fatal error, a resource exhausted)
    # repeat once per connection under a flood, each with a traceback.
    collapse_repeats(logging.getLogger("asyncio"))


@dataclass
class _Kind:
    since: float  # when the line of this kind last written began its window
    suppressed: int = 0
    level: int = logging.INFO
    first_line: str = ""
    report_due: bool = False


class CollapseRepeats(logging.Filter):
    """A `logging.Filter`: lines of one kind pass at most once per `window` seconds; the
    count of those held back is written when the window ends (on the running event loop
    if there is one, else with the next line of that kind)."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], _Kind] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        first_line = str(record.msg).partition("\n")[0]
        key = (record.name, record.levelno, first_line)
        now = self.clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.since < self.window:
                kind.suppressed += 1
                if not kind.report_due:
                    kind.report_due = self._schedule_report(key, kind.since + self.window - now)
                return False
            held_back = kind.suppressed if kind is not None else 0
            self._kinds[key] = _Kind(since=now, level=record.levelno, first_line=first_line)
        if held_back:  # no event loop wrote the count: it goes with this line
            record.msg, record.args = f"{record.getMessage()} ({held_back} more like this before)", None
        return True

    def _schedule_report(self, key: tuple[str, int, str], delay: float) -> bool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        loop.call_later(max(delay, 0.0), self.report, key)
        return True

    def report(self, key: tuple[str, int, str]) -> None:
        """Write the count of the lines of one kind held back in its window that has ended."""
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None or not kind.suppressed:  # quiet for a window: the next one passes at once
                self._kinds.pop(key, None)
                return
            count, kind.suppressed, kind.since, kind.report_due = kind.suppressed, 0, self.clock(), False
        logger = logging.getLogger(key[0])
        summary = logger.makeRecord(
            key[0], kind.level, "(collapsed)", 0,
            "%s (%d more like this in the last %g s)", (kind.first_line, count, self.window), None,
        )  # fmt: skip
        setattr(summary, _SUMMARY, True)
        logger.handle(summary)


def collapse_repeats(logger: logging.Logger, window: float = REPEAT_WINDOW_SECONDS) -> logging.Logger:
    """Install (once) a `CollapseRepeats` filter on `logger`; returns the logger."""
    if not any(isinstance(existing, CollapseRepeats) for existing in logger.filters):
        logger.addFilter(CollapseRepeats(window))
    return logger
