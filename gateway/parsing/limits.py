"""Hostile or broken input: limits a parsed mail must keep to before anything acts on it.

A mail over a limit is not lost: the pipeline keeps it raw as `failed` with the reason,
and `inbound retry` runs it again once an admin has raised the limit.
"""

from __future__ import annotations

from gateway.model import ParsedMail
from gateway.parsing.mime_tree import MAX_PARSED_DEPTH
from gateway.settings import LimitSettings


class LimitExceededError(Exception):
    """The message names the limit and the value."""


def check_limits(mail: ParsedMail, limits: LimitSettings) -> None:
    checks = (
        ("limits.max_parts", mail.part_count, limits.max_parts, "MIME parts"),
        # Deeper than the parser reads, the body was not read (mime_tree.py): refused whatever the setting.
        ("limits.max_depth", mail.depth, min(limits.max_depth, MAX_PARSED_DEPTH), "levels of nested multiparts"),
        ("limits.max_attachments", len(mail.attachments), limits.max_attachments, "attachments"),
        (
            "limits.max_attachment_bytes",
            max((attachment.size for attachment in mail.attachments), default=0),
            limits.max_attachment_bytes,
            "bytes in one attachment",
        ),
    )
    for key, value, limit, what in checks:
        if value > limit:
            raise LimitExceededError(f"{value} {what}, over {key} = {limit}")


def header_size(raw: bytes) -> int:
    """Bytes before the blank line that ends the header (all of it when there is none)."""
    ends = [index for index in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if index >= 0]
    return min(ends) if ends else len(raw)
