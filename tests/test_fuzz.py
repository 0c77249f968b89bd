"""Mutated real-world mail through the real listener (issue 24): the gateway stays up,
every mail it answered 250 is a ticket or kept raw with a reason, and no notification
carries a control character in a header. The mutations are bench/mutations.py's; a longer
run is `python -m bench fuzz --mails N`."""

from __future__ import annotations

import asyncio
import re

from bench.fuzz import account, header_controls, send_all
from bench.mutations import fuzz_corpus
from gateway.daemon import Gateway
from tests.conftest import Sink

LITERAL_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?")
FUZZ_MAILS = 300
SEED = 24
# Failures that are not the parser's, found by this test and reported with issue 24; each
# line goes once its fix is merged (the parse side has none left):
NOT_PARSING = (
    # mime.compose encodes the header block as ASCII: a participant with an RFC 6532
    # (non-ASCII) address, e.g. `josé@cliente.example`, fails the whole mail (render side).
    "UnicodeEncodeError: 'ascii' codec can't encode",
    # The same bounce delivered twice: actions.bounce stores it again, with no duplicate check.
    "IntegrityError: UNIQUE constraint failed: messages.message_id",
)


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
    parsing = [(spool_id, error) for spool_id, error in accounting.unreasoned if not error.startswith(NOT_PARSING)]
    assert parsing == [], [(mails[spool_id - 1].mutations, error) for spool_id, error in parsing]
    assert accounting.outbox["sent"] == len(relay.received) > 0
    controls = [line for mail in relay.received for line in header_controls(mail.raw)]
    # RENDER SIDE, not parsing's (issue 24 item 3; connect once render.py's fix is merged):
    # a name or subject whose text holds a literal encoded word (the sender's
    # `=?utf-8?q?=3D=3Futf-8=3Fq=3F=3D0D=3D0A=3F=3D?=`, decoded once, is `=?utf-8?q?=0D=0A?=`)
    # is written as it is, and the reader's mail program decodes it again, to CR LF. Text
    # like that must be written as an encoded word itself (RFC 2047 section 5). Then:
    # assert controls == []
    assert [line for line in controls if not LITERAL_WORD.search(line)] == []
