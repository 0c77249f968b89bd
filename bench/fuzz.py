"""Fuzz mode, `python -m bench fuzz --mails N`: mutated real-world mail through the real daemon.

Sends N mails from bench.mutations to `ticket-gateway serve` (a fresh database, a relay
sink that checks every header it receives), waits until each is processed and the
notifications are sent, and prints: mail accepted (250) and refused, spool rows by
outcome, failures by class, notifications queued vs delivered, headers with a control
character, the daemon's log size. The accounting and the header check are shared with
the suite's fuzz test (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import asyncio
import email.header
import re
import smtplib
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from bench.mutations import MAILBOX, FuzzMail, fuzz_corpus
from bench.processes import daemon, wait_processed, write_config

# What a failed spool row may say: a reason the gateway gives for mail it cannot take.
# Anything else (AttributeError, RecursionError, UnicodeError...) is the parser breaking.
REASONED_FAILURES = ("LimitExceededError: ", "UnprocessableMailError: ")
# C0 (tab aside: folding white space), DEL, C1, and the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
FOLD = re.compile(rb"\r\n(?=[ \t])")
SETTLE_SECONDS = 120.0


def send_all(port: int, mails: list[FuzzMail]) -> dict[int, str]:
    """Send each mail over SMTP (one session, reconnecting when the server hangs up);
    the server's answer to each: "250 ..." or the refusal."""
    replies: dict[int, str] = {}
    client: smtplib.SMTP | None = None
    for mail in mails:
        try:
            client = client or smtplib.SMTP("127.0.0.1", port, timeout=120)
            client.sendmail(f"fuzz{mail.index}@client.example", [MAILBOX], mail.raw)
            replies[mail.index] = "250"
        except smtplib.SMTPResponseException as error:
            replies[mail.index] = f"{error.smtp_code} {error.smtp_error!r}"
        except smtplib.SMTPRecipientsRefused as error:
            [(code, words)] = error.recipients.values()
            replies[mail.index] = f"{code} {words!r}"
        except (smtplib.SMTPException, OSError) as error:  # a hang-up: a new session for the next
            replies[mail.index] = f"disconnected: {error}"
            client = None
    if client is not None:
        client.quit()
    return replies


def header_controls(raw: bytes) -> list[str]:
    """Each header line of an outbound mail holding a control character: raw in its
    bytes, or in its text once its encoded words are decoded (what the reader sees)."""
    end = raw.find(b"\r\n\r\n")
    head = FOLD.sub(b"", raw if end < 0 else raw[:end])
    found = []
    for line in head.split(b"\r\n"):
        if RAW_CONTROL.search(line) or CONTROL.search(_decoded(line.decode("utf-8", "replace"))):
            found.append(line.decode("utf-8", "backslashreplace")[:200])
    return found


def _decoded(value: str) -> str:
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # a header the library cannot split: judged by its raw text
        return value
    text = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            text.append(chunk)
            continue
        try:
            text.append(chunk.decode(charset or "ascii", "replace"))
        except (LookupError, UnicodeError, ValueError):
            text.append(chunk.decode("latin-1"))
    return "".join(text)


@dataclass
class Accounting:
    statuses: Counter[str] = field(default_factory=Counter)
    failed_by_class: Counter[str] = field(default_factory=Counter)
    unreasoned: list[tuple[int, str]] = field(default_factory=list)  # (spool id, error)
    unaccounted: list[tuple[int, str, str]] = field(default_factory=list)  # (spool id, status, outcome)
    outbox: Counter[str] = field(default_factory=Counter)
    outbox_failures: Counter[str] = field(default_factory=Counter)  # by the reply's first words


def account(database: Path) -> Accounting:
    """Every spool row: a ticket (or a threaded entry), or kept raw with a reason."""
    result = Accounting()
    with sqlite3.connect(database) as connection:
        in_a_ticket = {row[0] for row in connection.execute("SELECT DISTINCT spool_id FROM messages")}
        for spool_id, status, outcome, error in connection.execute("SELECT id, status, outcome, error FROM spool"):
            result.statuses[status] += 1
            if status == "failed":
                result.failed_by_class[str(error).split(":", 1)[0]] += 1
                if not str(error).startswith(REASONED_FAILURES):
                    result.unreasoned.append((spool_id, error))
            elif not _accounted(status, str(outcome), spool_id in in_a_ticket):
                result.unaccounted.append((spool_id, status, outcome))
        result.outbox.update(dict(connection.execute("SELECT status, count(*) FROM outbox GROUP BY status")))
        for (reply,) in connection.execute("SELECT relay_reply FROM outbox WHERE status = 'failed'"):
            result.outbox_failures[" ".join(str(reply).split()[:6])] += 1
    return result


def _accounted(status: str, outcome: str, in_a_ticket: bool) -> bool:
    if status == "ignored":  # a loop, or automatic mail for no ticket
        return outcome.startswith("ignored: ")
    # A second copy of a mail already taken; a bounce or automatic reply noted on a ticket.
    return status == "done" and (in_a_ticket or outcome.startswith(("duplicate", "bounce", "auto", "bulk")))


class CheckingSink:
    """The relay: accepts every notification and checks its headers."""

    def __init__(self) -> None:
        self.received = 0
        self.bad_headers: list[str] = []

    async def handle_DATA(self, server: SMTP, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        self.received += 1
        self.bad_headers += header_controls(envelope.original_content)
        return "250 2.0.0 Ok"


async def run_fuzz(args: argparse.Namespace) -> dict[str, Any]:
    mails = fuzz_corpus(args.mails, seed=args.seed)
    sink = CheckingSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="sink.example"), "127.0.0.1", 0)
    sink_port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as directory:
        database, log = Path(directory) / "bench.db", Path(directory) / "daemon.log"
        # No flow control (max_backlog 0): it answers 451 to a fast sender, which is not what this measures.
        config = write_config(Path(directory), database, sink_port, 26 * 1024 * 1024, max_backlog=0)
        with daemon(config, log_to=log) as (process, port, _):
            began = time.perf_counter()
            replies = await asyncio.to_thread(send_all, port, mails)
            accepted = sum(reply.startswith("250") for reply in replies.values())
            await asyncio.to_thread(wait_processed, database, accepted)
            await _settle(database, sink)
            seconds = time.perf_counter() - began
            alive = process.poll() is None
        accounting = account(database)
        log_text = log.read_bytes()
        log_bytes, tracebacks = len(log_text), log_text.count(b"Traceback")
        if tracebacks:  # the first, to say where an unreasoned failure came from
            start = log_text.index(b"Traceback")
            print(log_text[start : start + 3000].decode(errors="replace"))
    server.close()
    return _report(args, mails, replies, accounting, sink, alive, seconds, log_bytes, tracebacks)


async def _settle(database: Path, sink: CheckingSink) -> None:
    """Wait until no notification is due (sent, failed, or waiting for a later retry)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    with sqlite3.connect(database) as connection:
        while time.monotonic() < deadline:
            now = datetime.now(UTC).isoformat(timespec="milliseconds")  # as gateway.clock.timestamp writes
            query = "SELECT count(*) FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?"
            (due,) = connection.execute(query, (now,)).fetchone()
            if not due:
                return
            await asyncio.sleep(0.2)


def _report(
    args: argparse.Namespace, mails: list[FuzzMail], replies: dict[int, str], accounting: Accounting,
    sink: CheckingSink, alive: bool, seconds: float, log_bytes: int, tracebacks: int,
) -> dict[str, Any]:  # fmt: skip
    refused = Counter(reply.split(" ", 1)[0] for reply in replies.values() if not reply.startswith("250"))
    queued = sum(accounting.outbox.values())
    figures = {
        "mode": "fuzz", "mails": len(mails), "seed": args.seed, "seconds": round(seconds, 1), "daemon alive": alive,
        "accepted (250)": len(mails) - sum(refused.values()), "refused by code": dict(refused),
        "spool rows by status": dict(accounting.statuses), "failed by class": dict(accounting.failed_by_class),
        "failed without a reason": len(accounting.unreasoned), "unaccounted": len(accounting.unaccounted),
        "notifications queued": queued, "notifications by status": dict(accounting.outbox),
        "notifications failed, by reason": dict(accounting.outbox_failures.most_common(5)),
        "notifications received by the sink": sink.received, "headers with a control character": len(sink.bad_headers),
        "log bytes": log_bytes, "tracebacks in the log": tracebacks,
        "mutations": dict(Counter(name for mail in mails for name in mail.mutations)),
    }  # fmt: skip
    print(f"\nfuzz: {len(mails):,} mutated mails (seed {args.seed}) in {seconds:.0f} s")
    for name, value in figures.items():
        if name not in ("mode", "mails", "seed", "seconds"):
            print(f"{name:40} {value}")
    for spool_id, error in accounting.unreasoned[:5]:
        print(f"  failed without a reason: spool {spool_id}: {str(error)[:150]}")
    for line in sink.bad_headers[:5]:
        print(f"  control character in: {line[:150]}")
    return figures
