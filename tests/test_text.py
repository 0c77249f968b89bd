"""Text work (quote removal, HTML to text, field and command lines) is linear in the mail's
size and done in the parser worker, never in the pipeline's write transaction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.daemon import Gateway
from gateway.parsing.html_text import html_to_text
from gateway.parsing.quotes import new_part
from gateway.parsing.workers import read_mail
from gateway.rules.commands import parse_commands
from gateway.rules.fields import customer_fields
from tests.conftest import make_mail, send, spool_rows
from tests.support.desk import all_tickets

QUOTED = "> Hola Ana, recibimos su solicitud.\n"
REQUESTER = "Ana Soto <ana@cliente.example>"


def test_the_parser_worker_finds_the_new_part_of_a_20000_line_quoted_reply() -> None:
    top_posted = "Sigue fallando.\nRUT: 76.086.428-5\n\nEl vie, Soporte escribió:\n" + QUOTED * 20_000
    mail = read_mail(make_mail("RE: falla", top_posted, sender=REQUESTER))
    assert mail.new_part == "Sigue fallando.\nRUT: 76.086.428-5"
    assert mail.field_lines == (("rut", "76.086.428-5"),)

    bottom_posted = "Hola.\n\n" + QUOTED * 20_000 + "\nSaludos, Ana"  # the quotes are inline history: kept
    mail = read_mail(make_mail("RE: falla", bottom_posted, sender=REQUESTER))
    assert mail.new_part == bottom_posted


def test_the_pipeline_transaction_does_no_text_work() -> None:
    """The desk (actions.py, run inside the transaction) reads what the worker made."""
    source = (Path(__file__).parents[1] / "gateway" / "desk" / "actions.py").read_text()
    imported = {
        (node.module, alias.name)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    modules = {module for module, _ in imported}
    assert not modules & {"gateway.parsing.quotes", "gateway.parsing.html_text"}
    assert ("gateway.rules.fields", "customer_fields") not in imported  # the line scan; fields_from reads pairs


@pytest.mark.parametrize(
    "html",
    [
        "<![" * 1000,  # HTMLParser raised AssertionError
        "<p>&#" + "1" * 5000 + ";</p>",  # html.unescape raised ValueError (int digit limit)
        "<p>&#x" + "0" * 5000 + "41;</p>",
    ],
)
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_character_references_still_decode() -> None:
    assert html_to_text("<p>&#65;&#x42;&#00000000067;&#99999999;&amp;</p>") == "ABC\ufffd&"


HOSTILE = 200_000  # each took from seconds to hours before; now each is one pass


@pytest.mark.parametrize(
    ("name", "work"),
    [
        ("'wrote' then spaces", lambda: new_part("wrote" + " " * HOSTILE + "x")),
        ("attribution then spaces", lambda: new_part("On 12 wrote" + " " * HOSTILE + "x")),
        ("unclosed div tags", lambda: new_part("", "<div " * (HOSTILE // 5), has_text_part=False)),
        ("many class= in one tag", lambda: new_part("", "<div " + "class=" * (HOSTILE // 6) + ">", False)),
        ("attribution openers", lambda: new_part("On 12, Ana\n" * (HOSTILE // 11))),
        ("header labels", lambda: new_part("De: Ana\nPara: x\n" * (HOSTILE // 17))),
        ("many links", lambda: new_part("", '<a href="http://x.example/">' * (HOSTILE // 27), has_text_part=False)),
        ("blockquotes", lambda: new_part("", "<blockquote>a" * (HOSTILE // 13), has_text_part=False)),
        ("unclosed start tags", lambda: html_to_text("<a " * (HOSTILE // 3))),
        ("field value then spaces", lambda: customer_fields("Empresa: x" + " " * HOSTILE + "y")),
        ("address of dots", lambda: parse_commands("#asignar a@" + "." * HOSTILE + "@", agent=True)),
        ("bottom-posted quotes", lambda: new_part("Hola\n" + QUOTED * (HOSTILE // 10) + "Ana")),
    ],
)
def test_hostile_text_is_read_in_one_pass(name: str, work: object) -> None:
    assert callable(work)
    work()  # no figure asserted: before, this test did not finish for minutes


# Whatever the lines, the new part is a stretch of the mail's own lines, and never empty
# when the mail has a line of unquoted text (issue 23). (Before, the cut was compared with
# the old quadratic scan, whose answer was empty for text written below the quote.)
TEXT_LINES = [
    "> cita",
    ">",
    "",
    "  ",
    "Hola",
    "-- ",
    "On 12 Nov, Ana wrote:",
    "El 20 nov 2026, Ana",
    "<ana@x.example> escribió:",
    "From: Ana",
    "Sent: hoy",
    "Para: Ana",
    "Asunto: x",
    "-----Original Message-----",
    "---------- Forwarded message ---------",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(TEXT_LINES), max_size=12), st.sampled_from(["RE: x", "RV: x", ""]))
def test_the_new_part_is_a_stretch_of_the_mail_and_never_empty(lines: list[str], subject: str) -> None:
    text = "\n".join(lines)
    found = new_part(text, subject=subject)
    assert found in text
    assert found.strip() or not text.strip()


HTML_ATOMS = ["<div", "<DIV", "<hr", "<blockquote", "</blockquote>", ">", '"', "class=", "gmail_quote", "id=",
              "divRplyFwdMsg", "stopSpelling", "<a href=", "http://x", "</a>", " ", "x", "<", "=", "<br>",
              "<td>"]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(HTML_ATOMS), max_size=14).map("".join))
def test_html_only_mail_has_a_new_part_when_it_has_text(html: str) -> None:
    found = new_part("", html, has_text_part=False)
    assert "\ue000" not in found and "\ue001" not in found
    assert found.strip() or not html_to_text(html).strip("> \n")


async def test_a_huge_quoted_reply_and_normal_mail_sent_meanwhile_all_get_250(gateway: Gateway) -> None:
    """Before, the quoted reply's text work held the write lock (here: the event loop) for
    over a minute: mail sent meanwhile timed out or got 451."""
    await send(gateway, make_mail("Falla al emitir facturas", sender=REQUESTER))
    await gateway.drain()
    [ticket] = await all_tickets(gateway)
    reply = "Sigue igual.\n\n" + QUOTED * 20_000 + "\nSaludos, Ana"  # bottom-posted: 640 KB
    assert await send(gateway, make_mail(f"RE: [#{ticket['number']}] Falla", reply, sender=REQUESTER)) == {}
    sent = 0
    while sent < 200 and spool_rows(gateway.settings.database.path)[1]["status"] in ("queued", "processing"):
        sender = f"Cliente {sent} <cliente{sent}@empresa.example>"
        assert await send(gateway, make_mail(f"Consulta {sent}", sender=sender)) == {}  # 250, while it works
        sent += 1
    await gateway.drain()
    assert all(row["status"] == "done" for row in spool_rows(gateway.settings.database.path))
    tickets = await all_tickets(gateway)
    assert len(tickets) == 1 + sent
    shown = await gateway.pipeline.queries.show_ticket(str(ticket["number"]))
    assert shown is not None
    assert [message["body"] for message in shown["messages"]][-1] == reply  # inline history is kept
