"""The same scenario through each example desk under examples/: its labels and its rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.settings import load_settings
from tests.conftest import PROJECT, Sink, make_mail, send
from tests.test_desk import agent_answers, last_to, rating_address, text_of

CUSTOMER = "cliente@empresa.example"
DESKS = {
    # example: (an agent's address, status after an agent's reply, what "resolved" reads, hours to close)
    "estela.toml": ("csoto@estela.example", "waiting_customer", "Resuelto", 48),
    "enviado.toml": ("carlos@andes-soft.example", "waiting_customer", "Resuelto", 72),
    "simple.toml": ("lucia@pampa.example", "in_progress", "Cerrado", 24),
}


@pytest.mark.parametrize("example", sorted(DESKS))
async def test_example_desk_runs_the_whole_scenario(
    example: str, tmp_path: Path, relay: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, after_reply, resolved_label, hours = DESKS[example]
    for key, value in {"SMTP__PORT": "0", "DATABASE__PATH": str(tmp_path / "desk.db"),
                       "OUTBOUND__PORT": str(relay.port)}.items():  # fmt: skip
        monkeypatch.setenv(f"GATEWAY_{key}", value)
    settings = load_settings(PROJECT / "examples" / example)
    mailbox = settings.mailboxes[0].address
    gateway = Gateway(settings)
    await gateway.start()
    try:
        await send(gateway, make_mail("No imprime", sender=CUSTOMER, to=mailbox), [mailbox])
        await gateway.drain()
        ack = last_to(relay, CUSTOMER)
        assert settings.label("open") in text_of(ack)
        number = ack.message["X-Ticket-Number"]
        assert number.startswith(settings.tickets.number_prefix + "-")

        notice = last_to(relay, settings.agents.notify_address)
        await agent_answers(gateway, notice, "Lo estamos revisando.", sender=agent)
        assert "Lo estamos revisando." in text_of(last_to(relay, CUSTOMER))
        assert (await gateway.pipeline.queries.show_ticket(number))["status"] == after_reply

        await agent_answers(gateway, notice, "#estado resuelto", sender=agent)
        resolved = last_to(relay, CUSTOMER)
        assert resolved_label in text_of(resolved)
        yes = rating_address(resolved, "Sí")
        await send(gateway, make_mail(f"[#{number}] Sí me ayudó", sender=CUSTOMER, to=yes), [yes])
        await gateway.drain()

        now = datetime.now(UTC)
        assert await gateway.pipeline.close_stale(now + timedelta(hours=hours - 1)) == []  # its own delay
        assert await gateway.pipeline.close_stale(now + timedelta(hours=hours, minutes=1)) == [number]
        ticket = await gateway.pipeline.queries.show_ticket(number)
        assert ticket["status"] == "closed" and ticket["rating"]["helpful"] is True
    finally:
        await gateway.stop()
