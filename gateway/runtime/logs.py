"""Logging as the daemon and its child processes write it: one format, to stderr.

Text: `time LEVEL [process spool=ID] logger: message`; JSON (`[logging] format = "json"`):
one object per line with time, level, process, logger, message, and where a line is
about a mail (its fields given with `extra=mail_fields(...)`) spool_id, message_id,
ticket, outcome and rule. Every field of a JSON line is data: a Message-ID or an outcome
quoting a header is the sender's text, and `json.dumps` escapes it, so no mail can forge a
line or a field.

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
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

REPEAT_WINDOW_SECONDS = 60.0
_SUMMARY = "_collapsed_summary"  # set on the summary records the filter writes itself
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process_label)s%(spool_tag)s] %(name)s: %(message)s"
MAIL_FIELDS = ("spool_id", "message_id", "ticket", "outcome", "rule")
PROCESS_PREFIX = "ticket-gateway-"  # of the children's names (children.py): "processor", "relay"
# A ticket number as numbering makes them (settings: number_prefix, then 6 digits or more),
# and the rule a verdict names (classify.Verdict: "auto_reply (rule auto-submitted: ...)").
TICKET_NUMBER = re.compile(r"\b[A-Za-z][A-Za-z0-9]{0,9}-\d{6,}\b")
RULE = re.compile(r"\(rule ([\w.-]+)")


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(add_process_and_spool)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    # aiosmtpd logs every SMTP command at INFO; our own lines say what an operator needs.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # asyncio's exception-handler lines (a transport's fatal error, a resource exhausted)
    # repeat once per connection under a flood, each with a traceback.
    collapse_repeats(logging.getLogger("asyncio"))


def mail_fields(spool_id: int, message_id: str | None, outcome: str) -> dict[str, object]:
    """The `extra=` of a line about one mail: what a log shipper indexes it by."""
    ticket = TICKET_NUMBER.search(outcome)
    rule = RULE.search(outcome)
    return {
        "spool_id": spool_id,
        "message_id": message_id or None,
        "ticket": ticket[0] if ticket else None,
        "outcome": outcome,
        "rule": rule[1] if rule else None,
    }


def process_label(name: str) -> str:
    """ "processor", "relay" for the children, "main" for the daemon or a command."""
    return "main" if name == "MainProcess" else name.removeprefix(PROCESS_PREFIX)


def add_process_and_spool(record: logging.LogRecord) -> bool:
    """A handler filter: the fields TEXT_FORMAT names, on every record (never drops one)."""
    record.process_label = process_label(record.processName or "")
    spool_id = getattr(record, "spool_id", None)
    record.spool_tag = f" spool={spool_id}" if spool_id is not None else ""
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback goes in its "traceback" field, not on lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": process_label(record.processName or ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in MAIL_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


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
