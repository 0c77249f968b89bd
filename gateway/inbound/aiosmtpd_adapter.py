"""The one place that reaches into aiosmtpd's internals (pyproject pins `aiosmtpd<1.5`).

aiosmtpd's SMTP class collects DATA as a list of lines joined at the end: several times
each mail's size in memory per session (docs/performance.md). The listener streams DATA into a file
instead (listener.StreamingData), which means replacing `smtp_DATA`, and so doing what
the original does around it with parts aiosmtpd keeps private:

- `_reader`: the session's asyncio.StreamReader, read line by line during DATA;
- `_call_handler_hook("DATA")`: calls the handler's `handle_DATA` as aiosmtpd would; it is
  also wrapped, so every reply a handler hook gives (RCPT, DATA) is seen by `on_reply`;
- `_set_post_data_state()`: resets the envelope after DATA, as aiosmtpd's own DATA does;
- `_reset_timeout()`: restarts the idle timer, so bytes arriving during DATA count as
  activity (aiosmtpd restarts it only when a command arrives);
- `_timeout_cb()`: the idle timer's callback, wrapped so the client hears a 421 before
  aiosmtpd closes the connection without a word;
- `_writer`: to write that 421 synchronously from the timer's callback.

tests/test_adapters.py fails, naming this module, when an installed aiosmtpd no longer has
these with the signatures used here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.smtp import SMTP

BORROWED = ("_reader", "_writer", "_call_handler_hook", "_set_post_data_state", "_reset_timeout", "_timeout_cb")


class AdaptedSMTP(SMTP):
    """aiosmtpd's SMTP with its private parts under public names of our own."""

    @property
    def stream(self) -> asyncio.StreamReader:
        """The session's incoming bytes."""
        return self._reader

    async def call_data_hook(self) -> str:
        """The handler's `handle_DATA` reply, called as aiosmtpd calls it."""
        status: str = await self._call_handler_hook("DATA")
        return status

    def end_data(self) -> None:
        """Back to the state after DATA: a new envelope, ready for the next MAIL."""
        self._set_post_data_state()  # type: ignore[no-untyped-call]

    def restart_idle_timer(self) -> None:
        self._reset_timeout()

    def on_idle_timeout(self) -> None:
        """Called when the idle timer fires, before aiosmtpd closes the connection."""

    def on_reply(self, command: str, status: Any) -> None:
        """Called with each reply a handler hook gives (RCPT, DATA …), before the client hears it."""

    def write_now(self, line: bytes) -> None:
        """Queue bytes for the client without waiting (for use where nothing can await)."""
        self._writer.write(line)

    def _timeout_cb(self) -> None:
        self.on_idle_timeout()
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        status = await super()._call_handler_hook(command, *args)
        self.on_reply(command, status)
        return status
