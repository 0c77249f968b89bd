"""The one place that reaches into aiosmtplib's internals (pyproject pins `aiosmtplib<6`).

Borrowed: `SMTPProtocol._drain_helper()`, which waits while the transport's write buffer
is over its high-water mark (asyncio's flow control, as `StreamWriter.drain` does). A
large notification goes to the relay a piece at a time (delivery.py), each piece read from
the outbox only once the one before it has left the buffer, so the relay never holds the
mail whole; aiosmtplib's public `data()` takes the whole mail at once.

tests/test_adapters.py fails, naming this module, when an installed aiosmtplib no longer
has it with the signature used here.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

BORROWED = ("_drain_helper",)


async def drained(protocol: SMTPProtocol, timeout: float | None) -> None:
    """Once what was written has left the write buffer (down to its low-water mark), or
    aiosmtplib's exceptions for a relay too slow or gone."""
    try:
        await asyncio.wait_for(protocol._drain_helper(), timeout)
    except TimeoutError as error:
        raise aiosmtplib.SMTPTimeoutError("timed out writing the mail to the relay") from error
    except ConnectionError as error:  # the relay hung up mid-mail
        raise aiosmtplib.SMTPServerDisconnected(f"Connection lost: {error}") from error
