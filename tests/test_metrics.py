"""The Prometheus endpoint of a real `serve`: one scrape shows what all its processes counted."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.request
from pathlib import Path

from gateway.runtime.metrics import outcome_kind
from tests.conftest import MAILBOX, Sink, make_mail, send_blocking, write_config
from tests.support.daemon import start_daemon, wait_for_log


def scrape(address: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in re.findall(r"^(ticket_gateway_\S+) (\S+)$", text, re.MULTILINE)}


async def scrape_until(address: str, name: str, value: float) -> dict[str, float]:
    """Scrape until `name` reaches `value` (the relay counts right after its log line), at most 100 times."""
    for _ in range(100):
        numbers = await asyncio.to_thread(scrape, address)
        if numbers.get(name) == value:
            break
    return numbers


async def test_one_scrape_shows_listener_processor_and_relay(tmp_path: Path, relay: Sink) -> None:
    config = write_config(tmp_path, relay_port=relay.port)
    daemon = await asyncio.to_thread(start_daemon, config, {"GATEWAY_METRICS__LISTEN": "127.0.0.1:0"})
    try:
        address = json.loads((tmp_path / "gateway.db.daemon.json").read_text())["metrics"]
        assert await asyncio.to_thread(send_blocking, daemon.port, make_mail("no imprime"), [MAILBOX]) == {}
        refused = await asyncio.to_thread(
            send_blocking, daemon.port, make_mail("a nadie"), [MAILBOX, "nadie@estela.example"]
        )
        assert refused == {"nadie@estela.example": (550, b"5.1.1 <nadie@estela.example>: no such mailbox here")}
        auto = make_mail("Respuesta automática", extra_headers={"Auto-Submitted": "auto-replied"})
        assert await asyncio.to_thread(send_blocking, daemon.port, auto, [MAILBOX]) == {}
        await asyncio.to_thread(wait_for_log, daemon, rb"inbound 3 .*ignored")
        # Two new tickets: an acknowledgement and an agents' notification each.
        assert await relay.handler.wait_until(lambda: len(relay.received) == 4, 60)
        numbers = await scrape_until(address, 'ticket_gateway_notifications_total{result="sent"}', 4.0)
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(daemon.process.wait)
    assert numbers['ticket_gateway_smtp_replies_total{code="250",command="DATA"}'] == 3
    assert numbers['ticket_gateway_smtp_replies_total{code="250",command="RCPT"}'] == 3
    assert numbers['ticket_gateway_smtp_replies_total{code="550",command="RCPT"}'] == 1
    assert numbers['ticket_gateway_mail_processed_total{outcome="new_ticket",rule=""}'] == 2
    assert numbers['ticket_gateway_mail_processed_total{outcome="ignored",rule="auto_submitted"}'] == 1
    assert numbers["ticket_gateway_processing_latency_seconds_count"] == 3
    assert numbers['ticket_gateway_notifications_total{result="sent"}'] == 4
    assert numbers["ticket_gateway_backlog"] == 0
    assert not (tmp_path / "gateway.db.metrics").exists()  # the counting files go with a clean stop


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    daemon = start_daemon(write_config(tmp_path))
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.wait()
    assert not (tmp_path / "gateway.db.metrics").exists()


def test_outcome_labels() -> None:
    assert outcome_kind("done", "new ticket TK-000001 in a@b.example, 2 notification(s)") == ("new_ticket", "")
    assert outcome_kind("done", "reply to TK-000001, 0 new cc, 1 notification(s)") == ("reply", "")
    assert outcome_kind("done", "duplicate (Message-ID <x> already stored), ticket TK-000001 unchanged") == (
        "duplicate",
        "",
    )
    assert outcome_kind("ignored", "ignored: loop (rule x_loop: our own header)") == ("ignored", "x_loop")
    assert outcome_kind("failed", "ValueError: no") == ("failed", "")
