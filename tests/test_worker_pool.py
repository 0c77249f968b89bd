"""The parser's worker processes: every call is answered, and a mail that kills its
worker fails alone (real spawned processes, fed through real pipes)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.parsing.mail import ParseError
from gateway.parsing.worker_pool import WorkerPool
from tests.support.pool_work import PoolWork


async def test_every_call_gets_its_own_answer_whatever_its_size() -> None:
    pool = WorkerPool(2, PoolWork())
    try:
        sizes = [1, 300_000, 7, 70_000, 0, 5]
        answers = await asyncio.gather(*(pool.submit(size) for size in sizes))
        assert [len(answer) for answer in answers] == sizes
    finally:
        pool.close()


async def test_a_failing_call_gets_its_exception_and_the_worker_goes_on() -> None:
    pool = WorkerPool(1, PoolWork(raises=3))
    try:
        failing, after = pool.submit(3), pool.submit(4)
        with pytest.raises(ValueError, match="cannot parse 3"):
            await failing
        assert await after == b"xxxx"
    finally:
        pool.close()


async def test_a_call_that_kills_its_worker_fails_alone() -> None:
    pool = WorkerPool(1, PoolWork(kills=2))
    try:
        before, killer, *behind = [pool.submit(spool_id) for spool_id in (1, 2, 3, 4)]
        assert await before == b"x"
        with pytest.raises(ParseError, match="died twice"):
            await killer
        assert await asyncio.gather(*behind) == [b"xxx", b"xxxx"]  # queued behind it: not its fault
        assert await pool.submit(5) == b"xxxxx"  # a new worker took over
    finally:
        pool.close()


async def test_closing_cancels_what_was_not_answered() -> None:
    pool = WorkerPool(1, PoolWork())
    first = pool.submit(1)
    assert await first == b"x"
    pending = pool.submit(2)
    pool.close()
    assert pending.cancelled()  # its answer, if any, is no longer read
