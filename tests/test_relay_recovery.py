"""The relay after trouble: an outage is followed by the backlog at the next probe, not by
as long a wait again; a relay killed after the relay's 250 sends nothing twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from gateway.clock import FixedClock
from gateway.daemon import Gateway
from gateway.outbound.relay import make_relay
from gateway.settings import load_settings
from gateway.storage.database import Database
from tests.conftest import Sink, SinkHandler, free_port, make_mail, send, write_config

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def test_after_an_hour_long_outage_the_backlog_goes_at_the_next_probe(tmp_path: Path) -> None:
    relay_port = free_port()  # nobody listens there: the relay is down
    clock = FixedClock(START)
    gateway = Gateway(load_settings(write_config(tmp_path, relay_port=relay_port)), clock)
    await gateway.start()
    sink = Sink(relay_port)
    try:
        await send(gateway, make_mail("Durante el corte"))
        await gateway.drain()
        for _ in range(60):  # an hour of clock time, down throughout
            clock.advance(minutes=1)
            await gateway.drain()
        queued = await gateway.pipeline.outbox.summaries("queued")
        assert len(queued) == 2 and "connection failed" in (queued[0].relay_reply or "")
        assert [entry.attempts for entry in queued] == [0, 0]  # an outage is no attempt

        await sink.start()  # the relay is back
        clock.advance(seconds=gateway.settings.outbound.probe_seconds)
        await gateway.drain()
        assert len(sink.received) == 2
        assert {entry.status for entry in await gateway.pipeline.outbox.summaries()} == {"sent"}
    finally:
        await gateway.stop()
        await sink.stop()


async def test_mail_queued_past_give_up_hours_during_an_outage_fails(tmp_path: Path) -> None:
    clock = FixedClock(START)
    gateway = Gateway(load_settings(write_config(tmp_path, relay_port=free_port())), clock)
    await gateway.start()
    try:
        await send(gateway, make_mail("Nunca llega"))
        await gateway.drain()
        clock.advance(hours=gateway.settings.outbound.give_up_hours, seconds=1)
        await gateway.drain()
        failed = await gateway.pipeline.outbox.summaries("failed")
        assert len(failed) == 2 and all("give_up_hours" in (entry.relay_reply or "") for entry in failed)
    finally:
        await gateway.stop()


class QuitWatcher(SinkHandler):
    """A sink that says when the relay hung up: by then it has read every 250."""

    def __init__(self) -> None:
        super().__init__()
        self.quit = asyncio.Event()

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        self.quit.set()
        return "221 Bye"


async def test_relay_killed_while_the_desk_holds_the_lock_sends_nothing_twice(tmp_path: Path) -> None:
    """The relay's process killed after the relay's 250s while the processor is in a long
    transaction (the desk's write lock held): restarted, it sends none of them again."""
    relay_port = free_port()
    settings = load_settings(write_config(tmp_path, relay_port=relay_port))
    clock = FixedClock(START)
    gateway = Gateway(settings, clock)  # its own relay tries once, finds the relay down, waits
    await gateway.start()
    sink = Sink(relay_port)
    sink.handler = watcher = QuitWatcher()
    # "The relay's process": its own connection, queued behind the desk's writers.
    relay_database = await Database.open(settings.database.path, gateway.pipeline.database.write_lock, durable=False)
    later = FixedClock(START)
    later.advance(minutes=5)
    try:
        await send(gateway, make_mail("Dos avisos"))
        await gateway.drain()
        await sink.start()
        async with gateway.pipeline.database.transaction():  # the processor, mid-transaction
            relay = make_relay(settings, relay_database, later)
            delivering = asyncio.create_task(relay.deliver_due())
            async with asyncio.timeout(10):
                await watcher.quit.wait()  # both 250s read; the relay still has to record them
            while not delivering.done():  # the kill (again, should hanging up swallow it)
                delivering.cancel()
                await asyncio.sleep(0)
        assert len(sink.received) == 2

        restarted = make_relay(settings, relay_database, later)
        await restarted.deliver_due()
        assert len(sink.received) == 2  # nothing twice
        sent = await gateway.pipeline.outbox.summaries("sent")
        assert len(sent) == 2 and all("queued as sink" in (entry.relay_reply or "") for entry in sent)
        assert [entry.attempts for entry in sent] == [1, 1]
    finally:
        await relay_database.close()
        await gateway.stop()
        await sink.stop()


async def test_a_stale_sent_log_beside_a_new_database_marks_nothing_sent(tmp_path: Path, relay: Sink) -> None:
    settings = load_settings(write_config(tmp_path, relay_port=relay.port))
    stale = settings.database.path.with_name(settings.database.path.name + ".relay-sent")
    stale.write_text('{"outbox_id": 1, "message_id": "old@estela.example", "sent_at": "2020-01-01", "reply": "250"}\n')
    gateway = Gateway(settings)
    await gateway.start()
    try:
        await send(gateway, make_mail("Base nueva"))
        await gateway.drain()
    finally:
        await gateway.stop()
    assert len(relay.received) == 2
    assert not stale.exists()


async def test_a_second_relay_waits_for_the_first_to_end_and_nothing_goes_twice(tmp_path: Path, relay: Sink) -> None:
    """After the daemon is killed its old relay lives on for up to a second beside the new
    one: both must not take the same due mail."""
    settings = load_settings(write_config(tmp_path, relay_port=relay.port))
    gateway = Gateway(settings)  # its relay runs, and holds the relay's lock
    await gateway.start()
    second_database = await Database.open(settings.database.path, durable=False)
    second, stop_second = make_relay(settings, second_database, gateway.clock), asyncio.Event()
    running = asyncio.create_task(second.run(stop_second))
    try:
        for index in range(10):
            await send(gateway, make_mail(f"Caso {index}", sender=f"c{index}@empresa.example"))
        await gateway.pipeline.drain()
        second.wakeup.set()
        gateway.relay.wakeup.set()
        assert await relay.handler.wait_until(lambda: len(relay.received) >= 20, 30)

        await gateway.stop()  # the first relay ends: the second takes over
        gateway = Gateway(settings)  # a relay of its own again, which now waits for the second
        await gateway.start()
        await send(gateway, make_mail("Después", sender="otro@empresa.example"))
        await gateway.pipeline.drain()
        second.wakeup.set()
        assert await relay.handler.wait_until(lambda: len(relay.received) >= 22, 30)
    finally:
        await gateway.stop()
        stop_second.set()
        await running
        await second_database.close()
    message_ids = [mail.message["Message-ID"] for mail in relay.received]
    assert len(message_ids) == len(set(message_ids)) == 22
