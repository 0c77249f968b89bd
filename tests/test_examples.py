"""Each example desk under examples/ from a customer's first mail to closing: its labels, its
transition table ([tickets] agent_reply_moves / customer_reply_moves) and what its customers
read at each step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.settings import load_settings
from tests.conftest import PROJECT, Sink, make_mail, run_cli, send
from tests.support.desk import agent_answers, last_to, rating_address, text_of

CUSTOMER = "cliente@empresa.example"


@dataclass(frozen=True)
class Desk:
    agent: str
    after_agent: str  # the status an agent's first reply leaves
    after_customer: str  # ...and the customer's answer to it
    resolved: str  # what "resolved" reads to customers
    hours: int  # to auto-close
    told_of_closing: bool  # a second mail at auto-close (not when "closed" reads as "resolved")


DESKS = {
    "estela.toml": Desk("csoto@estela.example", "waiting_customer", "open", "Resuelto", 48, True),
    "enviado.toml": Desk("carlos@andes-soft.example", "waiting_customer", "in_progress", "Resuelto", 72, True),
    "simple.toml": Desk("lucia@pampa.example", "in_progress", "in_progress", "Cerrado", 24, False),
}


@pytest.fixture
def example_env(tmp_path: Path, relay: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"SMTP__PORT": "0", "DATABASE__PATH": str(tmp_path / "desk.db"),
                       "OUTBOUND__PORT": str(relay.port)}.items():  # fmt: skip
        monkeypatch.setenv(f"GATEWAY_{key}", value)  # run_cli's child process inherits them


@pytest.mark.parametrize("example", sorted(DESKS))
async def test_example_desk_from_first_mail_to_closing(example: str, relay: Sink, example_env: None) -> None:
    desk = DESKS[example]
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

        async def status() -> str:
            return str((await gateway.pipeline.queries.show_ticket(number))["status"])  # type: ignore[index]

        notice = last_to(relay, settings.agents.notify_address)
        await agent_answers(gateway, notice, "Lo estamos revisando.", sender=desk.agent)
        answer = last_to(relay, CUSTOMER)
        assert "Lo estamos revisando." in text_of(answer)
        assert await status() == desk.after_agent

        reply = make_mail(f"Re: [#{number}] No imprime", body="Adjunto el registro.", sender=CUSTOMER, to=mailbox,
                          extra_headers={"In-Reply-To": answer.message["Message-ID"]})  # fmt: skip
        await send(gateway, reply, [mailbox])
        await gateway.drain()
        assert await status() == desk.after_customer

        before = len(relay.handler.to(CUSTOMER))
        await agent_answers(gateway, notice, "#estado resuelto", sender=desk.agent)
        [resolved] = relay.handler.to(CUSTOMER)[before:]
        assert desk.resolved in text_of(resolved)
        yes = rating_address(resolved, "Sí")
        await send(gateway, make_mail(f"[#{number}] Sí me ayudó", sender=CUSTOMER, to=yes), [yes])
        await gateway.drain()

        before = len(relay.handler.to(CUSTOMER))
        now = datetime.now(UTC)
        assert await gateway.pipeline.close_stale(now + timedelta(hours=desk.hours - 1)) == []  # its own delay
        assert await gateway.pipeline.close_stale(now + timedelta(hours=desk.hours, minutes=1)) == [number]
        await gateway.drain()
        closing = relay.handler.to(CUSTOMER)[before:]
        assert len(closing) == (1 if desk.told_of_closing else 0)
        assert all(settings.label("closed") in text_of(mail) for mail in closing)
        ticket = await gateway.pipeline.queries.show_ticket(number)
        assert ticket is not None and ticket["status"] == "closed" and ticket["rating"]["helpful"] is True  # type: ignore[index]
    finally:
        await gateway.stop()


async def test_simple_desk_lists_its_two_cerrado_states_apart(relay: Sink, example_env: None) -> None:
    config = PROJECT / "examples" / "simple.toml"
    settings = load_settings(config)
    mailbox = settings.mailboxes[0].address
    gateway = Gateway(settings)
    await gateway.start()
    try:
        for subject in ("No imprime", "No abre la caja"):
            await send(gateway, make_mail(subject, sender=CUSTOMER, to=mailbox), [mailbox])
        await gateway.drain()
        notices = relay.handler.to(settings.agents.notify_address)
        for notice in notices:
            await agent_answers(gateway, notice, "#estado resuelto", sender="lucia@pampa.example")
        await gateway.pipeline.close_stale(datetime.now(UTC) + timedelta(hours=25))
        await send(gateway, make_mail("No imprime otra vez", sender=CUSTOMER, to=mailbox), [mailbox])
        await gateway.drain()
        await agent_answers(gateway, last_to(relay, settings.agents.notify_address), "#estado resuelto",
                            sender="lucia@pampa.example")  # fmt: skip
    finally:
        await gateway.stop()
    listed = run_cli(config, "tickets", "list")
    assert listed.returncode == 0, listed.stderr.decode()
    lines = listed.stdout.decode().splitlines()
    assert [line.split("  ")[1].strip() for line in lines] == ["Cerrado (closed)", "Cerrado (closed)",
                                                               "Cerrado (resolved)"]  # fmt: skip


@pytest.mark.parametrize(
    ("tickets", "complaint"),
    [
        ('customer_reply_moves = { closed = "open" }', "never moves a ticket out of closed"),
        ('agent_reply_moves = { open = "closed" }', "never moves a ticket to closed"),
        ('agent_reply_status = "in_progress"\nagent_reply_moves = { open = "in_progress" }', "not both"),
    ],
)
def test_a_transition_table_that_cannot_work_is_refused_at_start(tmp_path: Path, tickets: str, complaint: str) -> None:
    text = (PROJECT / "examples" / "simple.toml").read_text()
    start = text.index("[tickets]")
    config = tmp_path / "desk.toml"
    config.write_text(text[:start] + f"[tickets]\n{tickets}\n" + text[text.index("[labels.es]") :])
    result = run_cli(config, "check-config")
    assert result.returncode != 0 and complaint in result.stderr.decode(), result.stderr.decode()
