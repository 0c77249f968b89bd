"""`python -m bench quotes` (or `python -m bench.quotes`): the new part's exact-match score on the table.

Calls only `gateway.parsing.quotes.new_part`, so an older checkout is measured the same way
(`PYTHONPATH=. .venv/bin/python -m bench.quotes` there; a `new_part` without `subject`
is called without it). `--failures` lists the cases that differ.
"""

from __future__ import annotations

import argparse
import inspect
import sys

from gateway.parsing.quotes import new_part
from tests.quote_cases import CASES, Case


def outcome(case: Case) -> str:
    has_text_part = not case.html
    if "subject" in inspect.signature(new_part).parameters:
        return new_part(case.text, case.html or None, has_text_part, subject=case.subject)
    return new_part(case.text, case.html or None, has_text_part)


def main(argv: list[str] | None = None, prog: str = "python -m bench.quotes") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--failures", action="store_true", help="show each case that differs")
    arguments = parser.parse_args(argv)
    passed = empty = 0
    for case in CASES:
        got = outcome(case)
        passed += got == case.expected
        empty += not got.strip()
        if got != case.expected and arguments.failures:
            print(f"--- {case.name}\n  expected: {case.expected!r}\n  got:      {got!r}")
    print(f"exact {passed}/{len(CASES)} ({passed / len(CASES):.0%}), empty new parts: {empty}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
