"""The log under a flood: a line repeated thousands of times is written once a window, with a count."""

from __future__ import annotations

import asyncio
import logging

from gateway.runtime.logs import CollapseRepeats


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.summary = asyncio.Event() if _loop_running() else None

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if self.summary is not None and "more like this" in self.lines[-1]:
            self.summary.set()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def quiet_logger(name: str, repeats: CollapseRepeats) -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.filters[:] = [repeats]
    lines = Lines()
    logger.handlers[:] = [lines]
    return logger, lines


def test_a_repeated_line_passes_once_a_window_and_the_next_one_carries_the_count() -> None:
    now = [0.0]
    logger, lines = quiet_logger("tests.repeats.lazy", CollapseRepeats(window=60, clock=lambda: now[0]))
    for index in range(1000):
        logger.warning("refused a connection from %s: %s", f"10.0.0.{index % 250}", "busy")
    logger.warning("another kind of line")
    logger.error("refused a connection from %s: %s", "10.0.0.1", "busy")  # another level: another kind
    assert lines.lines == [
        "refused a connection from 10.0.0.0: busy",
        "another kind of line",
        "refused a connection from 10.0.0.1: busy",
    ]
    now[0] = 61.0  # no event loop here to write the count when the window ends: the next line says it
    logger.warning("refused a connection from %s: %s", "10.0.0.9", "busy")
    assert lines.lines[-1] == "refused a connection from 10.0.0.9: busy (999 more like this before)"


async def test_on_the_event_loop_the_count_is_written_when_the_window_ends() -> None:
    logger, lines = quiet_logger("tests.repeats.loop", CollapseRepeats(window=0.2))
    for _ in range(500):
        logger.error("socket.accept() out of system resource\nsocket: <fd=%d>", 17)
    assert lines.summary is not None
    async with asyncio.timeout(10):
        await lines.summary.wait()
    assert lines.lines == [
        "socket.accept() out of system resource\nsocket: <fd=17>",
        "socket.accept() out of system resource (499 more like this in the last 0.2 s)",
    ]
