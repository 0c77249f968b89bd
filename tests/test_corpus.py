"""Odd real-world mail through the whole pipeline: nothing raises, nothing is lost."""

from __future__ import annotations

from gateway.daemon import Gateway
from tests.conftest import MAILBOX, spool_rows
from tests.test_parse import _corpus


async def test_every_corpus_mail_is_a_ticket_a_reply_or_kept_failed(gateway: Gateway) -> None:
    corpus = _corpus()
    for path in corpus:
        await gateway.pipeline.spool.add("sender@client.example", [MAILBOX], "corpus", path.read_bytes())
    await gateway.drain()

    rows = spool_rows(gateway.settings.database.path)
    assert len(rows) == len(corpus)
    stored = await gateway.pipeline.database.fetch_all("SELECT DISTINCT spool_id FROM messages")
    in_a_ticket = {row["spool_id"] for row in stored}
    for path, row in zip(corpus, rows, strict=True):
        assert row["raw"] == path.read_bytes(), path.name  # the raw bytes are always kept
        if row["status"] == "failed":
            assert row["error"], path.name
        elif row["status"] == "ignored":  # a loop, bounce or automatic mail for no ticket
            assert row["outcome"].startswith("ignored: "), path.name
        else:
            assert row["status"] == "done", path.name
            assert row["id"] in in_a_ticket or row["outcome"].startswith("duplicate"), (path.name, row["outcome"])
