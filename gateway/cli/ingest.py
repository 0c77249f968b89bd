"""`ticket-gateway ingest`: one mail from standard input, as an MTA's pipe transport hands it.

Guarantee: the exit status is a decision the MTA can act on (sysexits.h, which Postfix's
pipe(8) and Exim's pipe transport read). 0: stored. 67 (EX_NOUSER): a recipient is not one
of our mailboxes. 65 (EX_DATAERR): the mail is over `[smtp] max_message_size`. Those two are
refused on purpose, and the MTA bounces. Anything else, whatever went wrong (a config file
we cannot read, a lock file owned by another user, a database with a column missing, a bug)
exits 75 (EX_TEMPFAIL): the MTA keeps the mail and retries (Postfix for up to
`maximal_queue_lifetime`, 5 days), so an operator's mistake never bounces a customer's
mail. The reason is one line on stderr: Postfix quotes the command's output in the
bounce or the log, and a traceback is no message for a customer or an operator.

Several recipients (Postfix passes `--recipient a b` when the transport's
`destination_recipient_limit` is over 1) are one mail to several mailboxes, as one SMTP or
LMTP transaction with several RCPTs is: one spool row, one ticket.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gateway.cli import exit_codes
from gateway.desk.pipeline import open_pipeline
from gateway.settings import Settings

# Postfix's pipe(8) and local(8) pass the null sender (RFC 5321 §4.5.5: bounces, read
# receipts, auto-replies) as this name unless the transport sets `null_sender=`; taken
# literally, a read receipt would open a ticket and be answered.
POSTFIX_NULL_SENDER = "MAILER-DAEMON"


def add_ingest_command(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    ingest = command("ingest", run_ingest, "store one message from standard input (MTA pipe transport)", commands)
    ingest.add_argument(
        "--recipient",
        action="extend",
        nargs="+",
        default=[],
        help="envelope recipient(s): repeatable, and several may follow one --recipient",
    )
    ingest.add_argument("--sender", default="", help="envelope sender (empty or MAILER-DAEMON: the null sender)")
    # The MTA reads our status: a configuration it cannot load is ours to fix, not a reason
    # to bounce the mail (see the module docstring).
    ingest.set_defaults(config_error_status=exit_codes.TEMPFAIL)


def envelope_sender(given: str) -> str:
    """The envelope sender as the pipeline stores it: "" for the null sender."""
    sender = given.strip()
    if sender.strip("<>").upper() == POSTFIX_NULL_SENDER:
        return ""
    return sender


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def fail(reason: str, status: int = exit_codes.TEMPFAIL) -> int:
    print(f"ticket-gateway ingest: {one_line(reason)}", file=sys.stderr)
    return status


async def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return await _ingest(settings, args.recipient, envelope_sender(args.sender))
    except Exception as error:  # the one broad except of a pipe delivery: retry, never bounce (see above)
        return fail(f"temporary failure, try again later: {type(error).__name__}: {error}")


async def _ingest(settings: Settings, recipients: list[str], sender: str) -> int:
    if not recipients:
        return fail("no --recipient given: check the pipe transport's argv")
    unknown = [address for address in recipients if settings.mailbox_for(address) is None]
    if unknown:
        return fail(f"unknown recipient(s): {', '.join(unknown)}", exit_codes.NOUSER)
    raw = sys.stdin.buffer.read()
    if len(raw) > settings.smtp.max_message_size:
        size = settings.smtp.max_message_size
        return fail(f"message is {len(raw)} bytes, over smtp.max_message_size ({size})", exit_codes.DATAERR)
    async with open_pipeline(settings) as pipeline:
        spool_id = await pipeline.spool.add(sender, recipients, "stdin", raw)  # into the spool file, durable
        try:
            entry = await pipeline.spool.claim(spool_id)
            if entry is not None:  # else a running daemon took it first: it is in good hands
                await pipeline.process(entry)
            status = await pipeline.spool.status_of(spool_id)
        except Exception as error:  # stored: `serve` takes it up; a retry by the MTA would store it twice
            status = f"stored, left to the daemon ({type(error).__name__}: {one_line(str(error))})"
        print(f"queued as {spool_id}: {status}")
    return exit_codes.OK
