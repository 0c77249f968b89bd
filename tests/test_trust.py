"""Agent proof against forgery (issue 14 items 1-2, issue 24 item 4).

Every attack is sent to the real listener from 127.0.0.1 and must change nothing on the
ticket and mail nobody but the agents; the genuine paths (signed reply address, an
Authentication-Results header from a configured trusted relay, a verified DKIM signature
where configured) still work. The pure decision is tested on its own, by table.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.daemon import Gateway
from gateway.rules.signed_addresses import Signer
from gateway.rules.trust import agent_proof, results_prove, trusted_results
from gateway.settings import AgentSettings, SecuritySettings
from tests.conftest import Sink, make_mail, send
from tests.support.desk import agent_answers, dkim_signed, last_to, open_first_ticket

AGENTS = {"agentes@estela.example", "csoto@estela.example"}
ISSUE_RESULTS = "mx.estela.example; dkim=pass header.d=estela.example"  # exactly as in the issue
RELAY_RECEIVED = (
    "from attacker.example (attacker.example [203.0.113.66]) by mx.estela.example (Postfix)"
    " with ESMTP id 4F2A1; Sat, 21 Nov 2026 03:00:00 -0300"
)
FOREIGN_RECEIVED = (
    "from unknown (HELO attacker.example) (203.0.113.66) by attacker.example; Sat, 21 Nov 2026 03:00:00 -0300"
)
COMMANDS = (
    "#estado cerrado\n#prioridad baja\n#asignar ana@vendor.example\n#cc +attacker@attacker.example\n\n"
    "Estimado cliente: confirme sus datos en https://estela-pagos.example/login"
)


def trusting(relays: list[str], **more: object) -> dict[str, object]:
    """[security] that trusts the issue's authserv-id from `relays`."""
    return {"trusted_authserv_ids": ["mx.estela.example"], "trusted_relays": relays, **more}


def agent_mail(*top: tuple[str, str], subject: str = "Re: [#TK-000001] Error", body: str = COMMANDS) -> bytes:
    """A mail claiming to be Carla Soto's, with `top` headers first, as the relay handed it on."""
    headers = "".join(f"{name}: {value}\r\n" for name, value in top).encode()
    return headers + make_mail(subject, body=body, sender="Carla Soto <csoto@estela.example>")


async def fields(gateway: Gateway) -> dict[str, object]:
    shown = await gateway.pipeline.queries.show_ticket("TK-000001")
    assert shown is not None
    return {key: shown[key] for key in ("status", "priority", "assignee", "cc")}


async def assert_nothing_honoured(gateway: Gateway, relay: Sink, raw: bytes) -> None:
    before, sent_before = await fields(gateway), len(relay.received)
    await send(gateway, raw)
    await gateway.drain()
    assert await fields(gateway) == before  # 0 commands honoured
    new = relay.received[sent_before:]
    assert all(set(mail.rcpt_tos) <= AGENTS for mail in new), [mail.rcpt_tos for mail in new]


ATTACKS = {
    "the issue's mail, no relay configured": ([], [("Authentication-Results", ISSUE_RESULTS)]),
    "trusted id from an untrusted peer": (
        ["192.0.2.1", "10.0.0.0/8"],
        [("Authentication-Results", ISSUE_RESULTS), ("Received", RELAY_RECEIVED)],
    ),
    "below a foreign Received": (
        ["127.0.0.1"],
        [("Received", FOREIGN_RECEIVED), ("Authentication-Results", ISSUE_RESULTS)],
    ),
    "uppercase id below a foreign Received below the relay's": (
        ["127.0.0.1"],
        [
            ("Received", RELAY_RECEIVED),
            ("Received", FOREIGN_RECEIVED),
            ("Authentication-Results", ISSUE_RESULTS.replace("mx.estela", "MX.ESTELA")),
        ],
    ),
    "uppercase id from an untrusted peer": (
        ["192.0.2.0/24"],
        [("Authentication-Results", ISSUE_RESULTS.replace("mx.estela", "MX.ESTELA"))],
    ),
    "several: the topmost trusted one says fail": (
        ["127.0.0.1"],
        [
            ("Authentication-Results", "mx.other.example; dkim=pass header.d=estela.example"),
            ("Authentication-Results", "mx.estela.example; dkim=fail header.d=estela.example"),
            ("Authentication-Results", ISSUE_RESULTS),
            ("Received", RELAY_RECEIVED),
        ],
    ),
    "several: the topmost trusted one says none": (
        ["127.0.0.1"],
        [
            ("Authentication-Results", "mx.estela.example; none"),
            ("Authentication-Results", "MX.ESTELA.EXAMPLE; spf=pass smtp.mailfrom=estela.example"),
        ],
    ),
    "smtp.mailfrom with a second @": (
        ["127.0.0.1"],
        [("Authentication-Results", "mx.estela.example; spf=pass smtp.mailfrom=estela.example@evil.example")],
    ),
    "header.i with a second @": (
        ["127.0.0.1"],
        [("Authentication-Results", "mx.estela.example; dkim=pass header.i=estela.example@evil.example")],
    ),
    "header.d a parent": (["127.0.0.1"], [("Authentication-Results", "mx.estela.example; dkim=pass header.d=example")]),
}


@pytest.mark.parametrize(
    ("security", "top"), [(trusting(relays), top) for relays, top in ATTACKS.values()], ids=list(ATTACKS)
)
async def test_forged_authentication_results_change_nothing(
    gateway: Gateway, relay: Sink, top: list[tuple[str, str]]
) -> None:
    await open_first_ticket(gateway, relay)
    await assert_nothing_honoured(gateway, relay, agent_mail(*top))


@pytest.mark.parametrize("security", [trusting(["192.0.2.1", "127.0.0.0/8"])])
async def test_authentication_results_of_our_relay_prove_the_agent(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    await send(gateway, agent_mail(("Authentication-Results", ISSUE_RESULTS), ("Received", RELAY_RECEIVED)))
    await gateway.drain()
    assert await fields(gateway) == {
        "status": "closed", "priority": "low", "assignee": "ana@vendor.example",
        "cc": ["jnunez@distribuidora-andes.example", "attacker@attacker.example"],
    }  # fmt: skip
    assert "estela-pagos.example" in last_to(relay, "mjperez@distribuidora-andes.example").raw.decode()


@pytest.mark.parametrize("security", [trusting(["192.0.2.1"])])
async def test_signed_reply_address_still_proves_the_agent_from_an_untrusted_peer(
    gateway: Gateway, relay: Sink
) -> None:
    await open_first_ticket(gateway, relay)
    await agent_answers(gateway, last_to(relay, "agentes@estela.example"), "#prioridad baja\n\nListo.")
    assert (await fields(gateway))["priority"] == "low"


# --- DKIM checked here: only where configured, never for mail that failed a cheap check ---


def counting(dns: object) -> tuple[list[bytes], object]:
    looked_up: list[bytes] = []

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        looked_up.append(name)
        return dns(name, timeout)  # type: ignore[operator, no-any-return]

    return looked_up, lookup


async def test_dkim_is_not_looked_up_unless_configured(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    signed, dns = dkim_signed(agent_mail(body="#prioridad baja"))
    looked_up, gateway.pipeline.dkim_dns = counting(dns)
    await assert_nothing_honoured(gateway, relay, signed)
    assert looked_up == []


@pytest.mark.parametrize("security", [{"verify_dkim": True}])
async def test_verified_dkim_proves_the_agent_where_configured(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    signed, dns = dkim_signed(agent_mail(body="#prioridad baja"))
    looked_up, gateway.pipeline.dkim_dns = counting(dns)
    await send(gateway, signed)
    await gateway.drain()
    assert (await fields(gateway))["priority"] == "low" and looked_up == [b"sel._domainkey.estela.example."]


@pytest.mark.parametrize("security", [{"verify_dkim": True}])
@pytest.mark.parametrize("domain", ["example", "evil.example", "ESTELA.example.evil.example"])
async def test_dkim_of_another_or_parent_domain_is_not_looked_up(gateway: Gateway, relay: Sink, domain: str) -> None:
    await open_first_ticket(gateway, relay)
    signed, dns = dkim_signed(agent_mail(body="#prioridad baja"), domain=domain)  # it would verify
    looked_up, gateway.pipeline.dkim_dns = counting(dns)
    await assert_nothing_honoured(gateway, relay, signed)
    assert looked_up == []


@pytest.mark.parametrize("security", [{"verify_dkim": True}])
async def test_dkim_is_not_looked_up_for_a_new_mail_nor_a_proven_reply(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    notice = last_to(relay, "agentes@estela.example")
    reply_to = notice.message["Reply-To"]
    fresh, dns = dkim_signed(agent_mail(subject="Consulta nueva", body="Hola"))
    looked_up, gateway.pipeline.dkim_dns = counting(dns)
    await send(gateway, fresh)
    await gateway.drain()
    proven, _ = dkim_signed(agent_mail(subject=f"Re: {notice.message['Subject']}", body="#prioridad baja"))
    await send(gateway, proven, [reply_to])
    await gateway.drain()
    assert looked_up == [] and (await fields(gateway))["priority"] == "low"


@pytest.mark.parametrize("security", [{"verify_dkim": True, "dkim_timeout_seconds": 0.2}])
async def test_a_dns_that_never_answers_does_not_hold_the_mail(gateway: Gateway, relay: Sink) -> None:
    await open_first_ticket(gateway, relay)
    signed, _ = dkim_signed(agent_mail(body="#prioridad baja"))
    released = threading.Event()
    gateway.pipeline.dkim_dns = lambda name, timeout=5: released.wait()
    try:
        async with asyncio.timeout(60):  # a guard against hanging the suite, not a measure
            await assert_nothing_honoured(gateway, relay, signed)
    finally:
        released.set()


# --- the pure decision, by table ---

SIGNER = Signer(b"test secret")
AGENT_SETTINGS = AgentSettings(notify_address="agentes@estela.example", domains=["estela.example", "vendor.example"])
OURS = SecuritySettings(trusted_authserv_ids=("mx.estela.example",), trusted_relays=("10.0.0.0/8", "::1"))
AR = "authentication-results"
RELAY_HOP = ("received", "from x by mx.estela.example")
FOREIGN_HOP = ("received", "from x by smtp.evil.example")
RELAY = "10.0.0.1:25"
Row = tuple[list[tuple[str, str]], str, SecuritySettings, "str | None"]


def one(value: str, proof: str | None = None, peer: str = RELAY, security: SecuritySettings = OURS) -> Row:
    """A table row: a mail whose only header of interest is this Authentication-Results."""
    return [(AR, value)], peer, security, proof


PASS = "dkim=pass from a trusted host"
TABLE: list[Row] = [
    one(ISSUE_RESULTS, PASS),
    one(ISSUE_RESULTS, PASS, peer="::1:41000"),
    one(ISSUE_RESULTS, PASS, peer="::ffff:10.0.0.7:41000"),  # IPv4 on a dual-stack listener
    ([(AR, ISSUE_RESULTS), RELAY_HOP], RELAY, OURS, PASS),
    one("MX.Estela.Example (ours) 1; dkim=pass header.d=ESTELA.example", PASS),
    one("mx.estela.example; spf=pass smtp.mailfrom=csoto@estela.example", "spf=pass from a trusted host"),
    one('mx.estela.example; dmarc=pass header.from="vendor.example"', "dmarc=pass from a trusted host"),
    one("mx.estela.example; dkim=fail; dkim=pass header.d=estela.example", PASS),  # two signatures
    one(ISSUE_RESULTS, peer="192.0.2.1:41000"),  # not our relay
    one(ISSUE_RESULTS, peer="stdin"),  # `ingest`: no peer at all
    one(ISSUE_RESULTS, security=SecuritySettings(trusted_authserv_ids=("mx.estela.example",))),
    one(ISSUE_RESULTS, security=SecuritySettings(trusted_relays=("10.0.0.0/8",))),
    ([RELAY_HOP, (AR, ISSUE_RESULTS)], RELAY, OURS, PASS),  # a milter's A-R below the relay's own Received
    ([RELAY_HOP, RELAY_HOP, (AR, ISSUE_RESULTS)], RELAY, OURS, PASS),  # re-injected (a content filter)
    ([FOREIGN_HOP, (AR, ISSUE_RESULTS)], RELAY, OURS, None),  # written before the relay got it
    ([RELAY_HOP, FOREIGN_HOP, (AR, ISSUE_RESULTS)], RELAY, OURS, None),
    ([("received", "from x by MX.Estela.Example. with ESMTP"), (AR, ISSUE_RESULTS)], RELAY, OURS, PASS),
    ([("received", "from mx.estela.example by evil.example"), (AR, ISSUE_RESULTS)], RELAY, OURS, None),
    ([(AR, "mx.estela.example; dkim=neutral header.d=estela.example"), (AR, ISSUE_RESULTS)], RELAY, OURS, None),
    one("mx.estela.example.evil.example; dkim=pass header.d=estela.example"),
    one("mx.estela.example; dkim=pass header.d=estela.example.evil.example"),
    one("mx.estela.example; dkim=pass header.d=csoto@estela.example"),
    one("mx.estela.example; dkim=pass header.i=@estela.example"),
    one("mx.estela.example; spf=pass header.d=estela.example"),
    one("mx.estela.example; x-dkim=pass header.d=estela.example"),
    one('mx.estela.example; dkim=fail reason="dkim=pass header.d=estela.example"'),
    one("mx.estela.example; dkim=fail (dkim=pass header.d=estela.example)"),
    one("mx.estela.example (dkim=pass; header.d=estela.example) none"),
    one("mx.estela.example; dkim=pass header.d=estela.example header.d=evil.example"),
    one('mx.estela.example; dkim=pass header.d="estela.example'),
]


@pytest.mark.parametrize(("headers", "peer", "security", "proof"), TABLE)
def test_agent_proof_table(
    headers: list[tuple[str, str]], peer: str, security: SecuritySettings, proof: str | None
) -> None:
    found = agent_proof(headers, peer, [], "TK-000001", "csoto@estela.example", AGENT_SETTINGS, security, SIGNER)
    assert found == proof


@pytest.mark.parametrize(
    ("signed", "proves"),
    [("estela.example", True), ("vendor.example", True), ("example", False), ("sub.estela.example", False)],
)
def test_dkim_domains_must_equal_an_agents_domain(signed: str, proves: bool) -> None:
    found = agent_proof([], "", [], "TK-1", "csoto@estela.example", AGENT_SETTINGS, OURS, SIGNER, frozenset({signed}))
    assert (found is not None) is proves


def test_only_the_topmost_trusted_header_is_read() -> None:
    headers = [(AR, "mx.other.example; dkim=fail"), (AR, ISSUE_RESULTS), (AR, "mx.estela.example; none")]
    assert trusted_results(headers, RELAY, OURS) == ISSUE_RESULTS
    value = "mx.estela.example; spf=pass smtp.mailfrom=x@y@Estela.Example"
    assert results_prove(value, frozenset({"estela.example"})) == "spf"
