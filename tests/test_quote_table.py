"""Every case of tests/quote_cases.py: the new part exactly as a reader expects it."""

from __future__ import annotations

import pytest

from gateway.htmltext import html_to_text
from gateway.quotes import new_part
from tests.quote_cases import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_new_part(case: Case) -> None:
    found = new_part(case.text, case.html or None, has_text_part=not case.html, subject=case.subject)
    assert found == case.expected


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>el <b>XML</b> del</p>", "el XML del"),
        ('<p>Vea <a href="https://ayuda.example/x">la guía</a>.</p>', "Vea la guía (https://ayuda.example/x)."),
        ('<a href="https://ayuda.example/x">https://ayuda.example/x</a>', "https://ayuda.example/x"),
        ('<a href="mailto:ana@x.example">ana@x.example</a>', "ana@x.example"),
        ('<a href="javascript:alert(1)">aquí</a>', "aquí"),
        ("<ul><li>uno</li><li>dos</li></ul>", "- uno\n- dos"),
        ("<ol><li>uno</li><li>dos</li></ol>", "1. uno\n2. dos"),
        ("<table><tr><th>Producto</th><th>Cant.</th></tr><tr><td>Papel</td><td>3</td></tr></table>",
         "Producto | Cant.\nPapel | 3"),
        ("<div>uno</div><div>dos</div><div><br></div><div>tres</div>", "uno\ndos\n\ntres"),
        ("<p>uno<br>dos</p><p>tres</p>", "uno\ndos\n\ntres"),
    ],
)
def test_html_only_mail_reads_right(html: str, text: str) -> None:
    assert html_to_text(html) == text
