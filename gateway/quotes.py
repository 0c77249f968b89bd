"""The new part of a reply: the text without the quoted history a mail client appends.

Pure code. Cuts at the first quote header of Gmail, Outlook (desktop and web), Apple Mail
and iPhone, Thunderbird, in Spanish, English and Portuguese, or at a `>`-quoted block;
for HTML-only replies, drops Gmail's quote container, Outlook's reply header block and
blockquotes before the HTML becomes text. The full body is always kept elsewhere.
(mail-parser-reply was measured on the shared samples and took the customer's signature
and Gmail's Spanish header for one block, so the patterns live here.)
"""

from __future__ import annotations

import re

from gateway.htmltext import html_to_text

# `(?:\s*:)?\s*$`, not `\s*:?\s*$`: two adjacent `\s*` can split a run of spaces in n ways,
# and a line of "wrote" then 20,000 spaces then a letter took seconds.
_WROTE = r"(escribió|escribio|wrote|escreveu|a écrit)(?:\s*:)?\s*$"
# "El vie, 20 nov 2026 a las 11:40, Ana <ana@x> escribió:" (Gmail, Apple Mail, Thunderbird,
# also "On … wrote:" and "Em … escreveu:"); clients wrap it over two lines at times.
ATTRIBUTION = re.compile(rf"^\s*(El|On|Em|Le|Am)\b.{{4,300}}{_WROTE}", re.IGNORECASE)
ATTRIBUTION_START = re.compile(r"^\s*(El|On|Em|Le|Am)\b.*\d", re.IGNORECASE)
WROTE_END = re.compile(_WROTE, re.IGNORECASE)
SEPARATORS = re.compile(
    r"^\s*(-{2,}\s*(Mensaje original|Original Message|Mensagem original|Message d'origine)\s*-{2,}"
    r"|_{20,}"
    r"|-{2,}\s*(Forwarded message|Mensaje reenviado|Mensagem encaminhada)\s*-{2,})\s*$",
    re.IGNORECASE,
)
# Outlook's header block: "De:/From:" then, within a few lines, "Enviado:/Sent:/Date:".
HEADER_FROM = re.compile(r"^\s*\*?(De|From|Von)\s*:\*?\s", re.IGNORECASE)
HEADER_SENT = re.compile(r"^\s*\*?(Enviado|Enviado el|Enviada em|Sent|Date|Fecha|Data|Gesendet)\s*:", re.IGNORECASE)
HEADER_WINDOW = 4
QUOTED = re.compile(r"^\s*>")

# Where a quote container starts: the first `<div`, `<hr` or `<blockquote` tag (case
# insensitive) whose attributes, up to the next `>`, mark it as Gmail's quote container,
# Outlook web's and desktop's reply header, old Outlook's `stopSpelling` rule, or Apple
# Mail's and Thunderbird's cited blockquote. Everything from there on is history.
QUOTE_TAG = re.compile(r"<(?:(div)|(hr)|(blockquote))", re.IGNORECASE)
QUOTE_KINDS = ("div", "hr", "blockquote")  # by the group that matched
QUOTE_ATTRIBUTES = {
    "div": re.compile(r"id=\"?(appendonsend|divRplyFwdMsg)\b", re.IGNORECASE),
    "hr": re.compile(r"id=\"?stopSpelling", re.IGNORECASE),
    "blockquote": re.compile(r"type=\"?cite", re.IGNORECASE),
}


def new_part(text: str, html: str | None = None, has_text_part: bool = True) -> str:
    """What the sender wrote in this mail, without what they quoted."""
    if not has_text_part and html:
        return _strip_trailing_quotes(html_to_text(html[: html_quote_start(html)]))
    lines = text.splitlines()
    cut = _first_quote_line(lines)
    return _strip_trailing_quotes("\n".join(lines[:cut]))


def _first_quote_line(lines: list[str]) -> int:
    # A `>` line starts the history when every line after it is quoted or blank, that is
    # when it lies in the quoted-or-blank tail: found once, from the end (asking "is the
    # rest quoted?" at every quoted line took minutes for 16,000 quoted lines).
    tail = len(lines)
    while tail and (QUOTED.match(lines[tail - 1]) or not lines[tail - 1].strip()):
        tail -= 1
    for index, line in enumerate(lines):
        if ATTRIBUTION.match(line) or SEPARATORS.match(line):
            return index
        if ATTRIBUTION_START.match(line) and index + 1 < len(lines) and WROTE_END.search(lines[index + 1]):
            return index
        window = lines[index + 1 : index + 1 + HEADER_WINDOW]
        if HEADER_FROM.match(line) and any(HEADER_SENT.match(following) for following in window):
            return index
        if index >= tail and QUOTED.match(line):
            return index
    return len(lines)


def html_quote_start(html: str) -> int:
    """Where the quoted history of an HTML reply begins (`len(html)` when it has none).

    One pass: the text between two `>` is one region; a later quote tag in the same region
    sees only a suffix of what the first one sees, so only the first tag of each kind in a
    region is examined, and each region is read a bounded number of times."""
    examined: dict[str, int] = {}  # kind -> end of the region last examined for it
    region_end = -1
    for tag in QUOTE_TAG.finditer(html):
        if tag.start() >= region_end:
            found = html.find(">", tag.end())
            region_end = found if found >= 0 else len(html)
        kind = QUOTE_KINDS[(tag.lastindex or 1) - 1]
        if examined.get(kind) == region_end:
            continue
        examined[kind] = region_end
        attributes = html[tag.end() : region_end]
        if QUOTE_ATTRIBUTES[kind].search(attributes) or (kind == "div" and _gmail_quote_class(attributes)):
            return tag.start()
    return len(html)


def _gmail_quote_class(attributes: str) -> bool:
    """`class="?[^">]*gmail_quote` somewhere in `attributes`, without backtracking: the
    attributes split at `"` into pieces; a hit is `class=` then `gmail_quote` in one piece,
    or a piece ending in `class=` and the next one holding `gmail_quote`."""
    previous = ""
    for piece in attributes.lower().split('"'):
        hit = piece.rfind("gmail_quote")
        if hit >= 0:
            at = piece.find("class=")
            if (at >= 0 and at + len("class=") <= hit) or previous.endswith("class="):
                return True
        previous = piece
    return False


def _strip_trailing_quotes(text: str) -> str:
    lines = text.rstrip().splitlines()
    while lines and (QUOTED.match(lines[-1]) or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).strip("\n")
