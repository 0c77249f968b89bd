"""The new part of a mail: what the sender wrote, without the quoted history clients append.

Pure code, linear in the mail's size: every line is tagged once (text, empty, quoted,
attribution, splitter), each test reading at most a few short lines (`SHORT` characters),
and the new part is chosen from the tags:
- top-posting: the text above the first splitter (an Outlook header block, an "original
  message" line, an HTML quote container, an attribution not followed by `>` lines), or
  above the quoted block that ends the mail (a signature below it does not count);
- bottom-posting: the text below the one quoted block the mail starts with;
- inline answers (text between several quoted blocks) and anything unclear: everything.
  A new part is never empty when the mail has unquoted text.
A forward (its subject's first prefix, or a "forwarded message" separator) keeps what was
forwarded: quote removal is for replies. HTML-only mail gets the same rules, on its text
with blockquotes as `>` lines and quote containers as splitters (gateway.parsing.html_text).
The markers per language and client are one table, gateway.parsing.quote_markers. The full body is
always kept elsewhere.
"""

from __future__ import annotations

import re
from enum import Enum

from gateway.parsing import quote_markers as markers
from gateway.parsing.html_text import QUOTE_CONTAINER, html_to_text

SHORT = 400  # longer lines are never markers: every pattern reads at most this much
WRAP = 3  # an attribution wrapped by the client spans at most three lines
HEADER_WINDOW = 5  # an Outlook header block's labels follow within five lines
VERB = re.compile(markers.verb_pattern(), re.IGNORECASE)
VERB_END = re.compile(markers.verb_pattern() + r"\s*:?$", re.IGNORECASE)
LONGEST_VERB = max(map(len, markers.ATTRIBUTION_VERBS))
OPENER = re.compile(r"(?:" + "|".join(re.escape(o) for o in markers.ATTRIBUTION_OPENERS) + r")\b", re.IGNORECASE)
TIME = re.compile(r"\d{1,2}[:.]\d{2}")
QUOTED = re.compile(r"\s*>")
# "iPhoneOn Nov 20": an opener glued to the word before it (Apple Mail's "Sent from my iPhone").
GLUED = re.compile(r"(?<=[a-z0-9)])(?=(?:On|El|Em|Le|Am|Il|Op|Den|W dniu|Vào) )")
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PREFIX = re.compile(r"\s*(?:\[[^\]]{0,40}\]\s*)*([^\W\d_]{1,8})\s*(?:\[\d{1,4}\])?\s*:")


class Kind(Enum):
    EMPTY = "empty"
    TEXT = "text"
    QUOTED = "quoted"
    ATTRIBUTION = "attribution"  # "On … wrote:" (and its wrapped continuation lines)
    SPLITTER = "splitter"  # history follows, unmarked: header block, separator, container
    FORWARD = "forward"  # "---------- Forwarded message ---------"


def new_part(
    text: str, html: str | None = None, has_text_part: bool = True, subject: str = "",
    ours: frozenset[str] = frozenset(),
) -> str:  # fmt: skip
    """What the sender wrote in this mail, without what they quoted. `ours`: the desk's
    own addresses, whose mail forwarded back to it is history, not news."""
    from_html = not has_text_part and bool(html)
    if from_html and html:
        text = html_to_text(html, mark_quotes=True)
    lines = _unglued(text.splitlines())
    kinds = classify(lines)
    forward = is_forward_subject(subject) or _first_splitter_kind(kinds) is Kind.FORWARD
    if forward and not _forwards_from(lines, kinds, ours):
        start, end = _forwarded(lines, kinds)
    else:
        start, end = _reply(lines, kinds)
    kept = [line for line in lines[start:end] if line.strip() != QUOTE_CONTAINER]
    result = "\n".join(kept).strip("\n").rstrip()
    return re.sub(r"\n{3,}", "\n\n", result) if from_html else result


def _forwards_from(lines: list[str], kinds: list[Kind], ours: frozenset[str]) -> bool:
    """Whether the history's first header block says it is from one of `ours`: Outlook in
    Spanish answers with "RV:" (reenviar) as readily as with "RE:", and the desk's own
    mail sent back to it is already in the ticket."""
    first = next((at for at, kind in enumerate(kinds) if kind in (Kind.SPLITTER, Kind.FORWARD)), None)
    if not ours or first is None:
        return False
    for line in lines[first : first + HEADER_WINDOW + 2]:
        if _label(line) == "from":
            return any(_mailbox(found) in ours for found in ADDRESS.findall(line[:SHORT].lower()))
    return False


def _mailbox(address: str) -> str:
    """Without a +tag: our notifications may come from a signed plus form of a mailbox."""
    local, _, domain = address.partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def is_forward_subject(subject: str) -> bool:
    """Whether the subject's first prefix is a forward's ("RV: x", "Fwd: x"; not "RE: FW: x")."""
    prefix = PREFIX.match(subject[:SHORT])
    return bool(prefix) and prefix is not None and prefix.group(1).lower() in markers.FORWARD_PREFIXES


def classify(lines: list[str]) -> list[Kind]:
    """Tag every line; an attribution's wrapped lines are all tagged ATTRIBUTION."""
    kinds = [Kind.EMPTY if not line.strip() else Kind.QUOTED if QUOTED.match(line) else Kind.TEXT for line in lines]
    labels = [_label(line) if kind is Kind.TEXT else None for line, kind in zip(lines, kinds, strict=True)]
    index = 0
    while index < len(lines):
        if kinds[index] is Kind.TEXT:
            separator = _separator(lines[index])
            if separator is not None:
                kinds[index] = separator
            elif _header_block(labels, index) and not _introduces(lines, kinds, index):
                kinds[index] = Kind.SPLITTER
            else:
                span = _attribution_span(lines, kinds, index)
                for covered in range(index, index + span):
                    kinds[covered] = Kind.ATTRIBUTION
                index += max(span - 1, 0)
        index += 1
    _forward_containers(lines, kinds)
    return kinds


def _separator(line: str) -> Kind | None:
    stripped = line.strip()
    if len(stripped) > SHORT:
        return None
    if stripped == QUOTE_CONTAINER or (len(stripped) >= 20 and not stripped.strip("_")):
        return Kind.SPLITTER  # an HTML quote container; Outlook's line of underscores
    phrase = stripped.strip("-_=*> \t").rstrip(":").strip().lower()
    if phrase in markers.FORWARD_SEPARATORS:
        return Kind.FORWARD
    return Kind.SPLITTER if phrase in markers.REPLY_SEPARATORS else None


def _label(line: str) -> str | None:
    """The header label a line starts with ("De:", "*Von:*", "Envoyé :"), as its kind."""
    colon = line.find(":", 0, 40)
    if colon < 0:
        return None
    return markers.LABEL_KINDS.get(line[:colon].strip(" \t*").lower())


def _header_block(labels: list[str | None], index: int) -> bool:
    """ "From:" with "Sent:"/"Date:", or with "To:" and "Subject:", within a few lines below
    (a customer's own "Fecha: / Asunto:" lines, without a "De:", are not history)."""
    if labels[index] != "from":
        return False
    window = set(labels[index + 1 : index + 1 + HEADER_WINDOW])
    return "sent" in window or {"to", "subject"} <= window


def _introduces(lines: list[str], kinds: list[Kind], index: int) -> bool:
    """Whether the line above is the sender's own text announcing what follows ("Datos del
    traslado:"): then "De: / A: / Fecha:" below it are theirs, not a client's header block."""
    return index > 0 and kinds[index - 1] is Kind.TEXT and lines[index - 1].rstrip().endswith(":")


def _forward_containers(lines: list[str], kinds: list[Kind]) -> None:
    """Gmail wraps a forwarded message in the same container as a quote: a container whose
    next line is a "forwarded message" separator is not history."""
    for index, line in enumerate(lines):
        if kinds[index] is Kind.SPLITTER and line.strip() == QUOTE_CONTAINER:
            below = next((at for at in range(index + 1, len(lines)) if kinds[at] is not Kind.EMPTY), None)
            if below is not None and kinds[below] is Kind.FORWARD:
                kinds[index] = Kind.EMPTY


def _attribution_span(lines: list[str], kinds: list[Kind], index: int) -> int:
    """How many lines from `index` make one attribution (0 when none): the line alone, or
    wrapped over two or three lines when the first of them opens like one."""
    first = lines[index].strip()
    if len(first) > SHORT:
        return 0
    if _is_attribution(first, opens=True):
        return 1
    wrapped = index + 1
    if wrapped >= len(lines) or kinds[wrapped] is not Kind.TEXT or len(lines[wrapped]) > SHORT:
        return 0  # nothing to wrap onto (most body lines: a paragraph ends with an empty line)
    if not (OPENER.match(first) or _has_digit(first)):
        return 0
    joined = first
    for span in range(2, WRAP + 1):
        at = index + span - 1
        if at >= len(lines) or kinds[at] is not Kind.TEXT or len(lines[at]) > SHORT:
            return 0
        below = lines[at].strip()
        if (OPENER.match(below) or TIME.search(below)) and _is_attribution(below, opens=True):
            return 0  # the line below is a whole attribution on its own: this one is text
        joined = f"{joined} {lines[at].strip()}"
        if _is_attribution(joined, opens=True):
            return span
    return 0


def _is_attribution(line: str, opens: bool) -> bool:
    """ "On Fri, … Ana <a@x> wrote:", "---- Ana escribió ----", "2026-11-24 16:32 GMT-03:00 Ana <a@x>:"."""
    if line.startswith("--") and line.endswith("--"):
        return VERB.search(line) is not None  # Zoho, Android: the dashes make it one
    if not line.endswith(":") and not _ends_with_verb(line):
        return False
    dated = "@" in line or _has_digit(line)
    if VERB.search(line) is not None:
        if _ends_with_verb(line):  # "On Monday, Ana wrote:", "Support kirjoitti:"
            return dated or (opens and OPENER.match(line) is not None)
        # The verb inside the line ("Am 20.11. schrieb Ana:") only with a date or an address:
        # a customer's own "On Monday our accountant wrote to me:" is text.
        return dated and line.endswith(":")
    # Gmail in some locales, Yandex, mail.ru: a date, a time, a name and an address, then ":".
    return "@" in line and TIME.search(line) is not None and line.rstrip(":").rstrip().endswith(">")


def _ends_with_verb(line: str) -> bool:
    """VERB_END's search, started where the verb can begin: a search from the start tries
    every character of a paragraph against every verb."""
    end = len((line[:-1] if line.endswith(":") else line).rstrip())  # what `\s*:?$` may take
    return VERB_END.search(line, max(0, end - LONGEST_VERB - 2)) is not None  # 2: a final "\n" for `$`


def _has_digit(line: str) -> bool:
    return any(map(str.isdigit, line))  # str.isdigit, not \d: "²" and "①" count, as in a date


def _unglued(lines: list[str]) -> list[str]:
    """Split "Sent from my iPhoneOn Nov 20, … wrote:" into its two lines."""
    result: list[str] = []
    for line in lines:
        lowered = line[:SHORT].lstrip().lower()
        glued = GLUED.search(line, 0, SHORT) if lowered.startswith(markers.SENT_FROM) else None
        if glued is None:
            result.append(line)
        else:
            result.extend((line[: glued.start()], line[glued.start() :]))
    return result


def _first_splitter_kind(kinds: list[Kind]) -> Kind | None:
    return next((kind for kind in kinds if kind in (Kind.SPLITTER, Kind.FORWARD)), None)


def _blocks(kinds: list[Kind], end: int) -> list[tuple[bool, int]]:
    """(quoted?, first line) of each run of text or quote before `end`; an attribution
    followed by `>` lines opens their quoted block, empty lines belong to the run before."""
    blocks: list[tuple[bool, int]] = []
    for index in range(end):
        kind = kinds[index]
        if kind is Kind.EMPTY:
            continue
        quoted = kind in (Kind.QUOTED, Kind.ATTRIBUTION)
        if not blocks or blocks[-1][0] != quoted:
            blocks.append((quoted, index))
    return blocks


def _soft_end(kinds: list[Kind]) -> int:
    """The first line of unmarked history: a splitter, or an attribution whose quote has no `>`."""
    index = 0
    while index < len(kinds):
        kind = kinds[index]
        if kind in (Kind.SPLITTER, Kind.FORWARD):
            return index
        if kind is Kind.ATTRIBUTION:
            after = index
            while after < len(kinds) and kinds[after] is Kind.ATTRIBUTION:
                after += 1
            while after < len(kinds) and kinds[after] is Kind.EMPTY:
                after += 1
            if after == len(kinds) or kinds[after] is not Kind.QUOTED:
                return index
            index = after
        index += 1
    return len(kinds)


def _reply(lines: list[str], kinds: list[Kind]) -> tuple[int, int]:
    end = _soft_end(kinds)
    blocks = _blocks(kinds, end)
    if not any(not quoted for quoted, _ in blocks):
        return 0, len(lines)  # nothing unquoted above the history: keep it all
    quoted_blocks = [at for at, (quoted, _) in enumerate(blocks) if quoted]
    if not quoted_blocks:
        return 0, end
    last = quoted_blocks[-1]
    tail = last == len(blocks) - 1 or _is_signature(lines[blocks[last + 1][1]])
    if tail and any(not quoted for quoted, _ in blocks[:last]):
        return 0, blocks[last][1]  # top-posted above a quoted tail (maybe signed below it)
    if quoted_blocks == [0]:
        return blocks[1][1], end  # bottom-posted below the one quoted block
    return 0, end  # answers between quotes


def _forwarded(lines: list[str], kinds: list[Kind]) -> tuple[int, int]:
    """All of a forward, but for a quoted tail of a reply it was sent in."""
    blocks = _blocks(kinds, len(kinds))
    tail = blocks[-1][1] if blocks else 0
    if blocks[-1:] and kinds[tail] is Kind.ATTRIBUTION and any(not quoted for quoted, _ in blocks[:-1]):
        return 0, tail
    return 0, len(lines)


def _is_signature(line: str) -> bool:
    return line.rstrip() in ("--", "-- ")
