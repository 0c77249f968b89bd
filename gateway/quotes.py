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

_WROTE = r"(escribió|escribio|wrote|escreveu|a écrit)\s*:?\s*$"
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

HTML_QUOTES = re.compile(
    r"<div[^>]*class=\"?[^\">]*gmail_quote.*"  # Gmail's quote container, to the end
    r"|<div[^>]*id=\"?(appendonsend|divRplyFwdMsg)\b.*"  # Outlook web and desktop
    r"|<hr[^>]*id=\"?stopSpelling.*"  # old Outlook
    r"|<blockquote[^>]*type=\"?cite.*",  # Apple Mail, Thunderbird
    re.IGNORECASE | re.DOTALL,
)


def new_part(text: str, html: str | None = None, has_text_part: bool = True) -> str:
    """What the sender wrote in this mail, without what they quoted."""
    if not has_text_part and html:
        return _strip_trailing_quotes(html_to_text(HTML_QUOTES.sub("", html)))
    lines = text.splitlines()
    cut = _first_quote_line(lines)
    return _strip_trailing_quotes("\n".join(lines[:cut]))


def _first_quote_line(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if ATTRIBUTION.match(line) or SEPARATORS.match(line):
            return index
        if ATTRIBUTION_START.match(line) and index + 1 < len(lines) and WROTE_END.search(lines[index + 1]):
            return index
        window = lines[index + 1 : index + 1 + HEADER_WINDOW]
        if HEADER_FROM.match(line) and any(HEADER_SENT.match(following) for following in window):
            return index
        if QUOTED.match(line) and _rest_is_quoted_or_blank(lines[index:]):
            return index
    return len(lines)


def _rest_is_quoted_or_blank(lines: list[str]) -> bool:
    return all(QUOTED.match(line) or not line.strip() for line in lines)


def _strip_trailing_quotes(text: str) -> str:
    lines = text.rstrip().splitlines()
    while lines and (QUOTED.match(lines[-1]) or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).strip("\n")
