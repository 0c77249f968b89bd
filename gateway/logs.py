"""Logging as the daemon and its child processes write it: one format, to stderr."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO; our own lines say what an operator needs.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLevelName(level)))
