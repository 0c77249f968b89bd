"""Readable plain text from an HTML mail body (for mail that has no text/plain part).

Pure code, linear in the HTML's size, and it never raises: every markup construct is
found with `str.find` or a pattern without nested repetition, and the scan only moves
forward. (The standard library's HTMLParser took quadratic time on 5 MB of unclosed tags
and raised AssertionError on `<![`; html.unescape raises ValueError on a numeric character
reference of over 4,300 digits.) Nothing in the HTML is executed or fetched.
"""

from __future__ import annotations

import html as html_module
import re

BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"})
INVISIBLE_TAGS = frozenset({"script", "style", "head", "title"})
RAW_TEXT_TAGS = frozenset({"script", "style"})  # their content is not markup (HTML5 §13.1.2)
BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
# A tag name as HTMLParser reads it; `</` or `<!` or `<?` otherwise; a lone `<` is text.
MARKUP = re.compile(r"<(?:(/\s*)?([a-zA-Z][^\t\n\r\f />\x00]*)|(!--)|[!?/])")
QUOTED_VALUE = re.compile(r"=[\t\n\r\f ]*([\"'])")  # an attribute value in quotes may hold `>`
# Numeric references past U+10FFFF are U+FFFD (HTML5 §13.2.5.80); said here, because
# html.unescape converts every digit to an int first.
HUGE_CHARREF = re.compile(r"&#(?:[xX]0*[0-9a-fA-F]{7,}|0*[1-9][0-9]{7,});?")
LONG_ZEROS = re.compile(r"&#([xX]?)0{8,}")


class _Text:
    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.hidden_depth = 0

    def start(self, tag: str) -> None:
        if tag in INVISIBLE_TAGS:
            self.hidden_depth += 1
        elif tag == "li":
            self.chunks.append("\n- ")
        elif tag in BLOCK_TAGS:
            self.chunks.append("\n")

    def end(self, tag: str) -> None:
        if tag in INVISIBLE_TAGS:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in BLOCK_TAGS and tag != "br":
            self.chunks.append("\n")

    def data(self, data: str) -> None:
        if data and not self.hidden_depth:
            text = unescape(data)
            self.chunks.append(" ".join(text.split()) if text.strip() else " ")


def html_to_text(html: str) -> str:
    text = _Text()
    at = 0
    while at < len(html):
        markup = MARKUP.search(html, at)
        if markup is None:
            text.data(html[at:])
            break
        text.data(html[at : markup.start()])
        at = _take_markup(html, markup, text)
    lines = (line.strip() for line in "".join(text.chunks).splitlines())
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


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
    text.start(tag)
    if html[end - 1] == "/":  # <br/>
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
