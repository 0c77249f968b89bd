"""Connection floods and slow senders, against the real listener: bounded connections answered
421 at once, a legitimate sender still served, a log that stays small, and DATA timed by
progress (a slow but steady sender is served, a silent or endless one is cut, nothing stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import resource
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gateway.daemon import Gateway
from gateway.settings import Settings
from tests.conftest import MAILBOX, make_mail, send_blocking, spool_rows, write_config
from tests.support.daemon import Daemon, start_daemon

FLOOD_ADDRESS = "127.0.0.2"  # Linux answers the whole of 127/8: a second client next to 127.0.0.1

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def open_files_limit(limit: int) -> Callable[[], None]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return lower


async def connect(port: int, source: str = "127.0.0.1") -> Stream:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def first_lines(streams: list[Stream]) -> list[bytes]:
    """What the server said first on each connection (b"" if it closed without a word)."""
    async with asyncio.timeout(30):
        return list(await asyncio.gather(*(reader.readline() for reader, _ in streams)))


def close_all(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()


def stop_and_read_log(daemon: Daemon) -> list[bytes]:
    """SIGTERM, then every log line it wrote from "listening on" to "stopped"."""
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    lines: list[bytes] = []
    while not re.search(rb"gateway.daemon: stopped", lines[-1] if lines else b""):
        try:
            lines.append(daemon.log.get(timeout=30))
        except queue.Empty:
            raise AssertionError(b"".join(lines).decode()) from None
    return lines


async def send_until_accepted(port: int, seconds: float) -> dict[str, Any]:
    """Send one mail as an MTA would, trying again while the listener answers 421."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                return await asyncio.to_thread(send_blocking, port, make_mail("legítimo"), [MAILBOX])
            except Exception as error:  # smtplib's 421: SMTPConnectError or a disconnect
                if "421" not in str(error) and "closed" not in str(error):
                    raise


async def test_a_flood_past_the_open_file_limit_still_lets_a_legitimate_sender_in(tmp_path: Path) -> None:
    daemon = await asyncio.to_thread(start_daemon, write_config(tmp_path), None, open_files_limit(256))
    flood: list[Stream] = []
    try:
        flood = [await connect(daemon.port, FLOOD_ADDRESS) for _ in range(300)]  # idle, more than 256
        greetings = await first_lines(flood)
        assert sum(line.startswith(b"220 ") for line in greetings) == 20  # max_connections_per_client
        assert greetings.count(b"421 4.7.0 Too many connections, try again later\r\n") == 280

        async with asyncio.timeout(10):
            assert await asyncio.to_thread(send_blocking, daemon.port, make_mail("legítimo"), [MAILBOX]) == {}
    finally:
        close_all(flood)
        log = await asyncio.to_thread(stop_and_read_log, daemon)
    assert len(log) < 30, b"".join(log).decode()
    assert sum(b"refused a connection from 127.0.0.2" in line for line in log) == 1


async def test_out_of_file_descriptors_every_waiting_client_hears_421_and_the_log_stays_small(
    tmp_path: Path,
) -> None:
    # Limits set above what the process may open: the OS says "Too many open files" first.
    too_many = {"GATEWAY_SMTP__MAX_CONNECTIONS_PER_CLIENT": "200"}
    daemon = await asyncio.to_thread(start_daemon, write_config(tmp_path), too_many, open_files_limit(64))
    flood: list[Stream] = []
    try:
        flood = [await connect(daemon.port, FLOOD_ADDRESS) for _ in range(100)]
        greetings = await first_lines(flood)  # nobody left waiting for a greeting that cannot come
        assert all(line.startswith((b"220 ", b"421 4.7.0")) for line in greetings), set(greetings)
        assert any(line.startswith(b"421 4.7.0") for line in greetings)

        close_all(flood)  # the descriptors come back: mail flows again
        assert await send_until_accepted(daemon.port, seconds=20) == {}
    finally:
        close_all(flood)
        log = await asyncio.to_thread(stop_and_read_log, daemon)
    assert len(log) < 30, b"".join(log).decode()
    assert sum(b"Too many open files" in line for line in log) == 1


@contextlib.asynccontextmanager
async def gateway_with(settings: Settings, **smtp: Any) -> AsyncIterator[Gateway]:
    changed = Settings.model_validate({**settings.model_dump(), "smtp": {**settings.smtp.model_dump(), **smtp}})
    running = Gateway(changed)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_the_connection_past_the_per_client_limit_gets_421_and_other_clients_do_not(
    settings: Settings,
) -> None:
    async with gateway_with(settings, max_connections_per_client=3) as gateway:
        held = [await connect(gateway.port) for _ in range(3)]
        assert all(line.startswith(b"220 ") for line in await first_lines(held))
        over = [await connect(gateway.port)]
        reader = over[0][0]
        assert await first_lines(over) == [b"421 4.7.0 Too many connections, try again later\r\n"]
        assert await reader.read() == b""  # and closed
        other = [await connect(gateway.port, FLOOD_ADDRESS)]
        assert (await first_lines(other))[0].startswith(b"220 ")
        close_all(held + over + other)


async def test_the_connection_past_max_connections_gets_421(settings: Settings) -> None:
    async with gateway_with(settings, max_connections=3) as gateway:
        held = [await connect(gateway.port, f"127.0.0.{host}") for host in (1, 2, 3)]
        assert all(line.startswith(b"220 ") for line in await first_lines(held))
        over = [await connect(gateway.port, "127.0.0.4")]
        assert await first_lines(over) == [b"421 4.7.0 Too many connections, try again later\r\n"]
        close_all(held + over)


async def begin_data(port: int) -> Stream:
    """A session up to DATA's 354, by hand: the tests below then send the mail at their pace."""
    reader, writer = await connect(port)
    async with asyncio.timeout(10):
        await reader.readline()  # greeting
        for command in (b"HELO client.example", b"MAIL FROM:<c@empresa.example>", b"RCPT TO:<%s>" % MAILBOX.encode()):
            writer.write(command + b"\r\n")
            assert (await reader.readline())[:1] == b"2", command
        writer.write(b"DATA\r\n")
        assert (await reader.readline()).startswith(b"354")
    return reader, writer


async def trickle(writer: asyncio.StreamWriter, data: bytes, pieces: int, until: asyncio.Task[bytes]) -> None:
    """Send `data` in `pieces`, one every 0.2 s, cut anywhere in a line (the slow sender is the
    scenario, not a wait), until it is all sent or `until` is done (the server spoke)."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        if until.done():
            return
        writer.write(data[start : start + size])
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        await asyncio.sleep(0.2)


async def test_a_slow_but_steady_data_longer_than_the_idle_timeout_is_accepted(settings: Settings) -> None:
    async with gateway_with(settings, idle_timeout_seconds=1, data_timeout_seconds=60) as gateway:
        reader, writer = await begin_data(gateway.port)
        reply = asyncio.create_task(reader.readline())
        await trickle(writer, make_mail("despacio", body="línea\n" * 200), pieces=15, until=reply)  # ~3 s
        writer.write(b".\r\n")
        async with asyncio.timeout(10):
            assert (await reply).startswith(b"250 2.0.0")
        writer.close()
    assert len(spool_rows(settings.database.path)) == 1


async def test_a_client_silent_mid_data_longer_than_the_idle_timeout_is_cut_and_nothing_stored(
    settings: Settings,
) -> None:
    async with gateway_with(settings, idle_timeout_seconds=1) as gateway:
        reader, writer = await begin_data(gateway.port)
        writer.write(make_mail("a medias")[:200])  # then nothing
        async with asyncio.timeout(10):
            said = await reader.read()  # until the server closes
        writer.close()
    assert said.startswith(b"421 4.4.2 ")
    assert spool_rows(settings.database.path) == []


async def test_a_steady_data_past_the_total_deadline_is_cut_and_nothing_stored(settings: Settings) -> None:
    async with gateway_with(settings, idle_timeout_seconds=1, data_timeout_seconds=1.5) as gateway:
        reader, writer = await begin_data(gateway.port)
        said = asyncio.create_task(reader.read())  # until the server closes
        await trickle(writer, make_mail("sin fin", body="línea\n" * 500), pieces=20, until=said)  # would be ~4 s
        async with asyncio.timeout(10):
            assert (await said).startswith(b"421 4.4.2 mx.test.example Error: DATA took over 1.5 s")
        writer.close()
    assert spool_rows(settings.database.path) == []
