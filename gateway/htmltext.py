"""Readable plain text from an HTML mail body (for mail that has no text/plain part).

Built on the standard library's HTMLParser, which never raises on bad markup; nothing in
the HTML is executed or fetched.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"})
INVISIBLE_TAGS = frozenset({"script", "style", "head", "title"})
BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in INVISIBLE_TAGS:
            self.hidden_depth += 1
        elif tag == "li":
            self.chunks.append("\n- ")
        elif tag in BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in INVISIBLE_TAGS:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in BLOCK_TAGS and tag != "br":
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.chunks.append(" ".join(data.split()) if data.strip() else " ")


def html_to_text(html: str) -> str:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (line.strip() for line in "".join(collector.chunks).splitlines())
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
