"""Servers the benchmark runs as child processes: `python -m bench.servers bare|sink`.

bare — aiosmtpd whose handler answers 250 and does nothing: the framework's own limit.
sink — the relay the daemon's notifications go to; it accepts and forgets them.
Each prints its port on the first line of standard output, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Accept:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        return "250 OK"


async def serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Accept(), hostname="bench.example", data_size_limit=64 * 1024 * 1024), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:] not in (["bare"], ["sink"]):
        sys.exit("usage: python -m bench.servers bare|sink")
    asyncio.run(serve())
