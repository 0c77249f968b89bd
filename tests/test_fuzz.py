"""Mutated real-world mail through the real listener (issue 24): the gateway stays up,
every mail it answered 250 is a ticket or kept raw with a reason, and no notification
carries a control character in a header. The mutations are bench/mutations.py's; a longer
run is `python -m bench fuzz --mails N`."""

from __future__ import annotations

import asyncio

import pytest

from bench.fuzz import account, header_controls, send_all
from bench.mutations import fuzz_corpus
from gateway.daemon import Gateway
from tests.conftest import Sink

FUZZ_MAILS = 300
SEED = 24


@pytest.mark.slow
async def test_fuzzed_mail_is_accounted_for_and_no_header_carries_a_control(gateway: Gateway, relay: Sink) -> None:
    mails = fuzz_corpus(FUZZ_MAILS, seed=SEED)
    replies = await asyncio.to_thread(send_all, gateway.port, mails)
    await gateway.drain()

    accepted = [index for index, reply in replies.items() if reply.startswith("250")]
    assert len(accepted) > FUZZ_MAILS * 0.9, replies  # refusals are the listener's reasoned 5xx answers
    assert all(reply[:1] in ("2", "5") for reply in replies.values()), replies  # the listener never hung up
    accounting = account(gateway.settings.database.path)
    assert sum(accounting.statuses.values()) == len(accepted)  # every 250 has its spool row
    assert accounting.unaccounted == []
    unreasoned = accounting.unreasoned  # failed on an exception, not on a named limit
    assert unreasoned == [], [(mails[spool_id - 1].mutations, error) for spool_id, error in unreasoned]
    assert accounting.outbox["sent"] == len(relay.received) > 0
    controls = [line for mail in relay.received for line in header_controls(mail.raw)]
    assert controls == []  # not even one a mail program would decode out of a literal encoded word
