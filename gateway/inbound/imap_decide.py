"""Pure decisions of the IMAP intake: what a server's answer says, which UIDs to fetch and
which only to finish (move/flag/delete), who the envelope sender was.

Nothing here talks to a server or the database, so each rule has a table of cases in
tests/test_imap_decide.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from itertools import pairwise

UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<([^<>\r\n]*)>", re.IGNORECASE | re.MULTILINE)
FROM = re.compile(rb"^From:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)
HEADER_BYTES = 64 * 1024  # where the senders are looked for: far more than any real header block


@dataclass(frozen=True)
class Plan:
    """A folder's messages split by what we know of them."""

    fetch: list[int]  # not yet in the spool: fetch, spool, then finish
    finish: list[int]  # in the spool already (a crash came before the move): finish only


def plan(folder_uids: Iterable[int], spooled_uids: Iterable[int]) -> Plan:
    """UIDs are compared under one UIDVALIDITY (RFC 3501 §2.3.1.1): after it changes no
    old UID means anything, the caller passes none, and the whole folder is fetched again;
    the pipeline then drops what it already holds by Message-ID."""
    spooled = set(spooled_uids)
    uids = sorted(set(folder_uids))
    return Plan(fetch=[uid for uid in uids if uid not in spooled], finish=[uid for uid in uids if uid in spooled])


def batches(uids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(uids), size):
        yield list(uids[start : start + size])


def uid_set(uids: Iterable[int]) -> str:
    """An IMAP sequence set, with ranges for runs: "1:3,7" (RFC 3501 §9, sequence-set)."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        parts.append(str(ordered[index]) if end == index else f"{ordered[index]}:{ordered[end]}")
        index = end + 1
    return ",".join(parts)


def uidvalidity_of(lines: Iterable[bytes | bytearray]) -> int | None:
    """The UIDVALIDITY a SELECT answered (RFC 3501 §6.3.1: a server MUST send it)."""
    for line in lines:
        if found := UIDVALIDITY.search(bytes(line)):
            return int(found[1])
    return None


def uids_of(lines: Sequence[bytes | bytearray]) -> list[int]:
    """The UIDs of a UID SEARCH answer: the untagged lines, without the final status text."""
    return [int(word) for line in lines[:-1] for word in bytes(line).split() if word.isdigit()]


def literal_of(lines: Sequence[bytes | bytearray]) -> bytes | None:
    """The message of a one-message UID FETCH answer: the literal after its FETCH line;
    None when the server sent none (the message was expunged meanwhile, or it failed)."""
    for line, following in pairwise(lines):
        if b"FETCH" in line and bytes(line).rstrip().endswith(b"}") and isinstance(following, bytearray):
            return bytes(following)
    return None


def envelope_sender(raw: bytes) -> str:
    """What SMTP would have given as MAIL FROM. The last hop writes it as Return-Path
    (RFC 5321 §4.4), Gmail and Microsoft 365 included; "<>" stays empty so a bounce is
    known as one. Without it, the From address: an empty sender would make every such
    mail a bounce."""
    head = raw[:HEADER_BYTES].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if found := RETURN_PATH.search(head):
        return found[1].decode("ascii", "replace").strip()
    if found := FROM.search(head):
        return parseaddr(found[1].decode("utf-8", "replace").replace("\r\n", " ").replace("\n", " "))[1]
    return ""


def next_delay(previous: float | None, first: float, most: float) -> float:
    """Wait before connecting again: first, then doubling, never over `most`."""
    return first if previous is None else min(previous * 2, most)
