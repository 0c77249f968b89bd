"""`python -m bench.quote_libraries`: maintained reply parsers on our table, next to ours.

Issue 23 asks to measure the libraries that do this job on tests/quote_cases.py and say why
one was or was not taken. None is a dependency: each is imported inside a try and skipped
with a message when absent (`.venv/bin/pip install mail-parser-reply quotequail
email-reply-parser` to measure them). HTML-only cases give a library the text of the HTML
(gateway.parsing.html_text) unless it reads HTML itself (quotequail). Besides the exact-match score,
each parser is timed on one reply with `--quoted-lines` quoted lines, since the gateway
parses whatever a sender writes ("Never lose, never wedge, never loop").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from bench.quotes import outcome
from gateway.parsing.html_text import html_to_text
from tests.quote_cases import CASES, Case

Parser = Callable[[Case], str]


def _ours() -> Parser:
    return outcome


def _mail_parser_reply() -> Parser:
    from mailparser_reply import EmailReplyParser  # type: ignore[import-not-found]
    from mailparser_reply.constants import MAIL_LANGUAGES  # type: ignore[import-not-found]

    parser = EmailReplyParser(languages=[name for name in MAIL_LANGUAGES if name != "david"])
    return lambda case: str(parser.parse_reply(text=case.text or html_to_text(case.html)))


def _quotequail() -> Parser:
    import quotequail  # type: ignore[import-not-found]

    def parse(case: Case) -> str:
        if case.html:
            shown = "".join(part for expanded, part in quotequail.quote_html(case.html) if expanded)
            return html_to_text(shown)
        return "".join(part for expanded, part in quotequail.quote(case.text, quote_intro_line=True) if expanded)

    return parse


def _email_reply_parser() -> Parser:
    from email_reply_parser import EmailReplyParser  # type: ignore[import-not-found]

    return lambda case: str(EmailReplyParser.parse_reply(case.text or html_to_text(case.html)))


PARSERS: dict[str, Callable[[], Parser]] = {
    "ticket-gateway (gateway.parsing.quotes)": _ours,
    "mail-parser-reply": _mail_parser_reply,
    "quotequail": _quotequail,
    "email-reply-parser": _email_reply_parser,
}


def normalized(text: str) -> str:
    """Trailing spaces and blank-line runs do not count against a library."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return "\n".join(line for at, line in enumerate(lines) if line or (at and lines[at - 1]))


def large_reply(quoted_lines: int) -> Case:
    quote = "".join(f"> line {index} of the history, quoted by the client\n" for index in range(quoted_lines))
    return Case(
        "large", "", text=f"Sigue fallando.\n\nOn Fri, Nov 20, 2026 at 11:40 AM Support <s@x.example> wrote:\n{quote}"
    )


def main() -> int:
    options = argparse.ArgumentParser(prog="python -m bench.quote_libraries", description=__doc__.splitlines()[0])
    options.add_argument("--quoted-lines", type=int, default=20000, help="quoted lines of the timed reply (20000)")
    options.add_argument("--failures", metavar="NAME", default="", help="list one parser's differing cases")
    arguments = options.parse_args()
    print(f"{'parser':34} {'exact':>9} {'normalized':>11} {'empty':>6} {'large reply s':>14}")
    for name, make in PARSERS.items():
        try:
            parse = make()
        except ImportError as error:
            print(f"{name:34} skipped: {error.name} is not installed")
            continue
        exact = loose = empty = 0
        for case in CASES:
            got = parse(case)
            exact += got == case.expected
            loose += normalized(got) == normalized(case.expected)
            empty += not got.strip()
            if arguments.failures and arguments.failures in name and normalized(got) != normalized(case.expected):
                print(f"--- {case.name}\n  expected: {case.expected!r}\n  got:      {got!r}")
        began = time.perf_counter()
        parse(large_reply(arguments.quoted_lines))
        seconds = time.perf_counter() - began
        print(f"{name:34} {exact:4}/{len(CASES):<4} {loose:6}/{len(CASES):<4} {empty:6} {seconds:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
