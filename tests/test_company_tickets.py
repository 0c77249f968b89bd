"""Tickets by company: "Mis tickets" groups a customer's tickets by company and fiscal id; with
`company_tickets_visible` a mailbox also lists colleagues' tickets, by the same VALID fiscal
id only, never by e-mail domain."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.settings import Settings, load_settings
from tests.conftest import Sink, make_mail, send
from tests.support.desk import REQUESTER, customer_writes, opened, text_of


@pytest.fixture
def visible() -> bool:
    return False


@pytest.fixture
def settings(config_path: Path, visible: bool) -> Settings:
    loaded = load_settings(config_path)
    first = loaded.mailboxes[0].model_copy(update={"company_tickets_visible": visible})
    return loaded.model_copy(update={"mailboxes": [first, *loaded.mailboxes[1:]]})


async def someone_writes(gateway: Gateway, sender: str, subject: str, body: str) -> None:
    await send(gateway, make_mail(subject, body=body, sender=sender))
    await gateway.drain()


async def my_tickets(gateway: Gateway, relay: Sink) -> str:
    before = len(relay.received)
    await customer_writes(gateway, "Mis tickets", "")
    [listing] = relay.received[before:]
    assert listing.rcpt_tos == [REQUESTER]
    return text_of(listing)


async def colleagues_write(gateway: Gateway) -> None:
    await someone_writes(gateway, "Ana <ana@distribuidora-andes.example>", "Colega con RUT", "RUT: 76.086.428-5")
    await someone_writes(gateway, "Luis <luis@distribuidora-andes.example>", "Mismo dominio sin RUT", "Hola")
    # The same wrong RUT on both sides never makes a colleague: only a validated id does.
    await customer_writes(gateway, "Con RUT mal escrito", "RUT: 76.086.428-4")
    await someone_writes(gateway, "Eva <eva@otra.example>", "RUT igual pero no válido", "RUT: 76.086.428-4")


async def test_my_tickets_grouped_by_company_and_fiscal_id(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)  # TK-000001: Distribuidora Andes SpA, 76.086.428-5
    await customer_writes(gateway, "Factura de la otra empresa", "Empresa: Comercial Sur Ltda\nRUT: 77.777.777-7")
    body = await my_tickets(gateway, relay)
    andes, sur = (
        body.index("Distribuidora Andes SpA · RUT 76.086.428-5"),
        body.index("Comercial Sur Ltda · RUT 77.777.777-7"),
    )
    assert sur < body.index("TK-000002") < andes < body.index("TK-000001")  # newest group first


async def test_colleagues_tickets_hidden_by_default(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    await colleagues_write(gateway)
    body = await my_tickets(gateway, relay)
    assert "Colega con RUT" not in body and "Mismo dominio" not in body and "ana@" not in body


@pytest.mark.parametrize("visible", [True])
async def test_colleagues_with_the_same_valid_fiscal_id_listed_when_on(gateway: Gateway, relay: Sink) -> None:
    await opened(gateway, relay)
    await colleagues_write(gateway)
    body = await my_tickets(gateway, relay)
    assert "Colega con RUT (de ana@distribuidora-andes.example)" in body
    assert "Mismo dominio sin RUT" not in body  # the e-mail domain alone: never
    assert "RUT igual pero no válido" not in body  # an unvalidated id: never
    assert "Con RUT mal escrito" in body  # the customer's own ticket, of course
