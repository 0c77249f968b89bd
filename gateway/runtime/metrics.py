"""Prometheus metrics: what each of the daemon's processes counts, and one endpoint for all.

`serve` runs the listener, the processor and the relay in three processes. Each counts in
prometheus-client's multiprocess mode: its own memory-mapped file in one private directory
(`<database>.metrics/`, emptied at every start), which the daemon's endpoint sums at every
scrape (`MultiProcessCollector`). Chosen over counting in the database: a count costs no
write under the desk's write lock, needs no table, and a child started again after a crash
adds to the counts its predecessor left. The depths (backlog, outbox) are gauges read from
the database at scrape time: the database is the truth, whichever process changed it.

The library decides at its first import whether it counts in files (PROMETHEUS_MULTIPROC_DIR
set) or in memory, so only this module imports it, and only once that variable is set: by
`start` in the daemon, by `enable_in_child` in its children. Where neither ran (`ingest`,
tests driving the gateway in one process) every call below does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from prometheus_client.registry import Collector

from gateway.storage.spool_file import attach, read_only_uri

log = logging.getLogger(__name__)

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # the library's own name for it
BACKLOG_SQL = "SELECT count(*) FROM inbound WHERE status IN ('queued', 'processing')"
OUTBOX_QUEUED_SQL = "SELECT count(*) FROM outbox WHERE status = 'queued'"
# 250 → processed, in seconds: a mail is usually done in well under a second; a backlog
# after an outage or a relay of parse workers at their limit shows in the upper buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# What the pipeline's outcome says first (desk/actions.py, desk/pipeline.py).
OUTCOME_KINDS = (("new ticket", "new_ticket"), ("duplicate", "duplicate"), ("reply", "reply"), ("agent ", "reply"))
NOTIFICATION_RESULTS = {"sent": "sent", "retry": "deferred", "failed": "failed"}  # delivery.py's outcomes


class _Metrics:
    """The metric definitions: built once per process, after the mode is decided."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.replies: Counter = Counter(
            "ticket_gateway_smtp_replies",
            "Replies of the listener to RCPT and DATA, by command and reply code (250 at DATA: accepted)",
            ["command", "code"],
        )
        self.processed: Counter = Counter(
            "ticket_gateway_mail_processed",
            "Spooled mail processed, by outcome; rule: the classification rule that ignored it",
            ["outcome", "rule"],
        )
        self.latency: Histogram = Histogram(
            "ticket_gateway_processing_latency_seconds",
            "From the 250 that accepted a mail to the end of its processing",
            buckets=LATENCY_BUCKETS,
        )
        self.notifications: Counter = Counter(
            "ticket_gateway_notifications",
            "Delivery attempts of outgoing mail, by result (sent, deferred, failed)",
            ["result"],
        )


_metrics: _Metrics | None = None


def replied(command: str, reply: str) -> None:
    """The listener answered `command` (RCPT or DATA; LMTP: a line per recipient)."""
    if _metrics is None or command not in ("RCPT", "DATA") or not isinstance(reply, str):
        return
    for line in reply.split("\r\n"):
        _metrics.replies.labels(command, line[:3]).inc()


def processed(received_at: str, status: str, outcome: str) -> None:
    """A mail's processing ended (status done, ignored or failed) `received_at` after its 250."""
    if _metrics is None:
        return
    kind, rule = outcome_kind(status, outcome)
    _metrics.processed.labels(kind, rule).inc()
    if received_at:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(received_at)).total_seconds()
        _metrics.latency.observe(max(seconds, 0.0))


def outcome_kind(status: str, outcome: str) -> tuple[str, str]:
    """(outcome label, rule label) of a processed mail."""
    if status in ("failed", "ignored"):
        rule = outcome.partition("(rule ")[2].partition(":")[0] if status == "ignored" else ""
        return status, rule or ("other" if status == "ignored" else "")
    kind = next((label for start, label in OUTCOME_KINDS if outcome.startswith(start)), "other")
    return kind, ""


def notification(outcome: str) -> None:
    """One delivery attempt ended: delivery.py's "sent", "retry" or "failed"."""
    if _metrics is not None:
        _metrics.notifications.labels(NOTIFICATION_RESULTS.get(outcome, outcome)).inc()


def enable_in_child() -> None:
    """In a child of the daemon: count into the daemon's directory, if it has one."""
    global _metrics
    if os.environ.get(DIRECTORY_VARIABLE) and _metrics is None:
        _metrics = _Metrics()


class Endpoint:
    """The daemon's /metrics server (a thread), and the directory the processes count in."""

    def __init__(self, server: Any, directory: Path) -> None:
        self._server = server
        self.directory = directory

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def start(listen: tuple[str, int] | None, database: Path) -> Endpoint | None:
    """In the daemon, before its children start: count, and serve /metrics on `listen`
    (None: neither, and no child counts either). Raises OSError if it cannot listen."""
    global _metrics
    if listen is None:
        os.environ.pop(DIRECTORY_VARIABLE, None)  # a variable from elsewhere must not switch children on
        return None
    directory = database.with_name(database.name + ".metrics")
    shutil.rmtree(directory, ignore_errors=True)  # counts of an earlier run, or of a killed one
    directory.mkdir(mode=0o700, parents=True)
    os.environ[DIRECTORY_VARIABLE] = str(directory)  # before the first import: see the docstring
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    _metrics = _Metrics()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_depth_collector(database))
    server, _ = start_http_server(listen[1], listen[0], registry=registry)
    endpoint = Endpoint(server, directory)
    log.info("metrics on http://%s:%d/metrics", *endpoint.address)
    return endpoint


def _depth_collector(database: Path) -> Collector:
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    class Depths(Collector):
        """Read at every scrape, on the server's thread, over a read-only connection."""

        def collect(self) -> Iterator[GaugeMetricFamily]:
            try:
                with contextlib.closing(sqlite3.connect(read_only_uri(database), uri=True, timeout=1)) as db:
                    attach(db, database)  # the `inbound` view: mail not yet copied to the desk counts too
                    backlog = db.execute(BACKLOG_SQL).fetchone()[0]
                    outbox = db.execute(OUTBOX_QUEUED_SQL).fetchone()[0]
            except sqlite3.Error as error:  # locked past the timeout, say: this scrape goes without them
                log.warning("metrics: cannot read the queue depths: %s", error)
                return
            yield GaugeMetricFamily("ticket_gateway_backlog", "Mail accepted and not yet processed", value=backlog)
            yield GaugeMetricFamily("ticket_gateway_outbox_queued", "Outgoing mail not yet sent", value=outbox)

    return Depths()
