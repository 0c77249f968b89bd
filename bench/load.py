"""The load generator: concurrent SMTP sessions with aiosmtplib, timing each DATA → 250."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiosmtplib

from bench.corpus import MAILBOX, BenchMail


@dataclass
class LoadResult:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    deferred: int = 0  # 4xx answers retried, as an MTA would, when asked to
    started: float = 0.0  # wall clock (time.time), to compare with the daemon's timestamps
    finished: float = 0.0
    data_latencies: list[float] = field(default_factory=list)  # seconds, DATA sent → 250
    accepted_at: dict[str, float] = field(default_factory=dict)  # Message-ID → wall clock of 250
    errors: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


async def _session(
    port: int, mails: list[BenchMail], result: LoadResult, pace: asyncio.Queue[None] | None, retry_after: float | None
) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120, start_tls=False)
    await client.connect()
    try:
        for mail in mails:
            if pace is not None:
                await pace.get()
            result.sent += 1
            while (refusal := await _transaction(client, mail, result)) is not None:
                if retry_after is None or not 400 <= refusal.code < 500:
                    result.refused += 1
                    result.errors.append(f"{refusal.code} {refusal.message}")
                    break
                result.deferred += 1
                await asyncio.sleep(retry_after)
    finally:
        await client.quit()


async def _transaction(
    client: aiosmtplib.SMTP, mail: BenchMail, result: LoadResult
) -> aiosmtplib.SMTPResponseException | None:
    """One MAIL/RCPT/DATA; the server's refusal, if it refused."""
    try:
        await client.mail(mail.sender)
        await client.rcpt(MAILBOX)
        began = time.perf_counter()
        await client.data(mail.raw)
    except aiosmtplib.SMTPResponseException as refusal:
        await client.rset()
        return refusal
    result.data_latencies.append(time.perf_counter() - began)
    result.accepted_at[mail.message_id] = time.time()
    result.accepted += 1
    return None


async def send(
    port: int,
    mails: list[BenchMail],
    sessions: int,
    per_session: int,
    rate: float | None = None,
    retry_after: float | None = None,
) -> LoadResult:
    """Send `mails` over connections of `per_session` mails each, `sessions` at a time;
    with `rate`, at that many mails per second in all (an open-loop, paced load); with
    `retry_after`, a 4xx answer is retried that many seconds later, else counted refused."""
    result = LoadResult(started=time.time())
    batches = [mails[start : start + per_session] for start in range(0, len(mails), per_session)]
    pending: asyncio.Queue[list[BenchMail]] = asyncio.Queue()
    for batch in batches:
        pending.put_nowait(batch)
    pace: asyncio.Queue[None] | None = asyncio.Queue() if rate else None

    async def worker() -> None:
        while not pending.empty():
            batch = pending.get_nowait()
            try:
                await _session(port, batch, result, pace, retry_after)
            except (aiosmtplib.SMTPException, OSError) as error:
                result.errors.append(f"session failed: {error!r}")

    async def metronome() -> None:
        assert pace is not None and rate
        for _ in mails:
            pace.put_nowait(None)
            await asyncio.sleep(1 / rate)

    tasks = [asyncio.create_task(worker()) for _ in range(min(sessions, len(batches)))]
    if pace is not None:
        tasks.append(asyncio.create_task(metronome()))
    await asyncio.gather(*tasks)
    result.finished = time.time()
    return result


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
