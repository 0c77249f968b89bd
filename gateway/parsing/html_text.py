"""Readable plain text from an HTML mail body (for mail that has no text/plain part).

Pure code, linear in the HTML's size, and it never raises: every markup construct is
found with `str.find` or a pattern without nested repetition, and the scan only moves
forward. (The standard library's HTMLParser takes quadratic time on unclosed tags and
raises AssertionError on `<![`; html.unescape raises ValueError on a numeric character
reference of over 4,300 digits.) Nothing in the HTML is executed or fetched.
"""

from __future__ import annotations

import html as html_module
import re

from gateway.parsing.quote_markers import HTML_BORDER, HTML_CONTAINERS

BLOCK_TAGS = frozenset({"div", "li", "tr", "table", "blockquote", "hr", "ul", "ol", "center", "section", "article"})
PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre"})  # a blank line around them
CELL_TAGS = frozenset({"td", "th"})
INVISIBLE_TAGS = frozenset({"script", "style", "head", "title"})
RAW_TEXT_TAGS = frozenset({"script", "style"})  # their content is not markup (HTML5 §13.1.2)
BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
# A tag name as HTMLParser reads it; `</` or `<!` or `<?` otherwise; a lone `<` is text.
MARKUP = re.compile(r"<(?:(/\s*)?([a-zA-Z][^\t\n\r\f />\x00]*)|(!--)|[!?/])")
QUOTED_VALUE = re.compile(r"=[\t\n\r\f ]*([\"'])")  # an attribute value in quotes may hold `>`
HREF = re.compile(r"(?<![\w-])href[\t\n\r\f ]*=[\t\n\r\f ]*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))", re.IGNORECASE)
SHOWN_SCHEMES = ("http://", "https://", "mailto:")
MAX_URL = 2000
# Numeric references past U+10FFFF are U+FFFD (HTML5 §13.2.5.80); said here, because
# html.unescape converts every digit to an int first.
HUGE_CHARREF = re.compile(r"&#(?:[xX]0*[0-9a-fA-F]{7,}|0*[1-9][0-9]{7,});?")
LONG_ZEROS = re.compile(r"&#([xX]?)0{8,}")
# With mark_quotes (for gateway.parsing.quotes): a line of its own where a quote container opens,
# and text inside <blockquote> as `>` lines. Private-use characters, removed from the
# mail's own text first, so a sender cannot write them.
QUOTE_CONTAINER = "\ue000"
_IN_QUOTE = "\ue001"


class _Text:
    """The text so far, with what a browser would show as line breaks."""

    def __init__(self, mark_quotes: bool) -> None:
        self.chunks: list[str] = []
        self.hidden_depth = 0
        self.quote_depth = 0
        self.mark_quotes = mark_quotes
        self.newlines = 1  # newlines at the end of the text (the start counts as one)
        self.cells = 0  # cells seen in the current table row
        self.lists: list[int] = []  # per open list: 0 for <ul>, else the next <ol> number
        self.link: tuple[str, int] | None = None  # the open <a>'s URL and first chunk

    def _break(self, count: int) -> None:
        if len(self.chunks) and self.newlines < count:
            self.chunks.append("\n" * (count - self.newlines))
            self.newlines = count

    def start(self, tag: str, attributes: str) -> None:
        if tag in INVISIBLE_TAGS:
            self.hidden_depth += 1
        elif tag == "br":
            self.chunks.append("\n")
            self.newlines += 1
        elif tag == "a":
            self.end("a")
            self.link = (_shown_url(attributes), len(self.chunks))
        elif tag in CELL_TAGS:
            if self.cells:
                self._emit(" | ")
            self.cells += 1
        else:
            self._start_block(tag, attributes)

    def _start_block(self, tag: str, attributes: str) -> None:
        if tag in PARAGRAPH_TAGS:
            self._break(2)
        elif tag in BLOCK_TAGS:
            self._break(1)
        if tag == "tr":
            self.cells = 0
        elif tag in ("ul", "ol"):
            self.lists.append(0 if tag == "ul" else 1)
        elif tag == "li":
            number = self.lists[-1] if self.lists else 0
            self._emit(f"{number}. " if number else "- ")
            if number:
                self.lists[-1] += 1
        elif tag == "blockquote":
            self.quote_depth += 1
        if self.mark_quotes and _is_quote_container(attributes):
            self._break(1)
            self.chunks.append(QUOTE_CONTAINER + "\n")
            self.newlines = 1

    def end(self, tag: str) -> None:
        if tag in INVISIBLE_TAGS:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag == "a" and self.link is not None:
            url, first = self.link
            self.link = None
            shown = "".join(self.chunks[first:])
            if url and url.removeprefix("mailto:") not in shown:
                self._emit(f" ({url})")
        elif tag in PARAGRAPH_TAGS:
            self._break(2)
        elif tag in BLOCK_TAGS:
            self._break(1)
            if tag in ("ul", "ol") and self.lists:
                self.lists.pop()
            elif tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)

    def data(self, data: str) -> None:
        if not data or self.hidden_depth:
            return
        text = unescape(data)
        if self.mark_quotes:
            text = text.replace(QUOTE_CONTAINER, "").replace(_IN_QUOTE, "")
        words = " ".join(text.split())
        if not words:
            if text and not self.newlines:
                self.chunks.append(" ")  # the space between two inline tags: "el <b>XML</b> del"
            return
        lead = " " if text[0].isspace() and not self.newlines else ""
        self._emit(lead + words + (" " if text[-1].isspace() else ""))

    def _emit(self, text: str) -> None:
        if self.mark_quotes and self.quote_depth:
            text = _IN_QUOTE + text
        self.chunks.append(text)
        self.newlines = 0


def _shown_url(attributes: str) -> str:
    """The link's target when it is worth showing: a web or mail address, not a script."""
    found = HREF.search(attributes)
    url = unescape(next((value for value in found.groups() if value is not None), "")) if found else ""
    url = url.strip()
    return url if url.lower().startswith(SHOWN_SCHEMES) and len(url) <= MAX_URL else ""


def _is_quote_container(attributes: str) -> bool:
    lowered = attributes.lower()
    return any(marker in lowered for marker in HTML_CONTAINERS) or HTML_BORDER.search(lowered) is not None


def html_to_text(html: str, mark_quotes: bool = False) -> str:
    """The text a reader sees. With `mark_quotes`, blockquoted lines start with `> ` and
    each quote container (Gmail, Outlook, Yahoo: gateway.parsing.quote_markers) is a line of
    QUOTE_CONTAINER, for gateway.parsing.quotes."""
    text = _Text(mark_quotes)
    at = 0
    while at < len(html):
        markup = MARKUP.search(html, at)
        if markup is None:
            text.data(html[at:])
            break
        text.data(html[at : markup.start()])
        at = _take_markup(html, markup, text)
    text.end("a")
    lines = (_line(line) for line in "".join(text.chunks).splitlines())
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _line(line: str) -> str:
    if _IN_QUOTE not in line:
        return line.strip()
    return "> " + line.replace(_IN_QUOTE, "").strip()


def _take_markup(html: str, markup: re.Match[str], text: _Text) -> int:
    """Hand a tag to `text`; the position after the markup (the end when it is unclosed)."""
    if markup.group(3):  # a comment
        end = html.find("-->", markup.end())
        return len(html) if end < 0 else end + 3
    name = markup.group(2)
    end = html.find(">", markup.end()) if name is None else _tag_end(html, markup.end())
    if end < 0:
        return len(html)  # an unclosed tag at the end shows nothing, as in a browser
    if name is None:  # a declaration, processing instruction or bogus end tag
        return end + 1
    tag = name.lower()
    if markup.group(1):
        text.end(tag)
        return end + 1
    text.start(tag, html[markup.end() : end])
    if html[end - 1] == "/" and tag != "a":  # <br/>
        text.end(tag)
    elif tag in RAW_TEXT_TAGS:
        close = re.compile(f"</{tag}", re.IGNORECASE).search(html, end + 1)
        return len(html) if close is None else close.start()
    return end + 1


def _tag_end(html: str, at: int) -> int:
    """Index of the `>` ending a start tag whose attributes begin at `at`, or -1.

    Quoted values are skipped; a quote never closed leaves the first `>` as the end. Each
    search starts where the last one ended (`close` is found once per stretch), so a tag
    is read once; a quote search can fail once per quote character in the whole mail, as
    after that failure no such character follows."""
    close = html.find(">", at)
    while close >= 0:
        value = QUOTED_VALUE.search(html, at, close)
        if value is None:
            return close
        closing = html.find(value.group(1), value.end())
        if closing < 0:
            return close
        at = closing + 1
        if at > close:
            close = html.find(">", at)
    return close


def unescape(text: str) -> str:
    """html.unescape, safe from references with thousands of digits."""
    if "&#" not in text:
        return html_module.unescape(text) if "&" in text else text
    text = LONG_ZEROS.sub(lambda zeros: f"&#{zeros.group(1)}0", text)
    return html_module.unescape(HUGE_CHARREF.sub("\ufffd", text))
