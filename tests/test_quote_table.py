"""Every case of tests/quote_cases.py: the new part exactly as a reader expects it."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from gateway.daemon import Gateway
from gateway.parsing.html_text import html_to_text
from gateway.parsing.quotes import new_part
from tests.conftest import MAILBOX, crlf, make_mail, send
from tests.quote_cases import CASES, Case
from tests.support.desk import ticket


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
        (
            "<table><tr><th>Producto</th><th>Cant.</th></tr><tr><td>Papel</td><td>3</td></tr></table>",
            "Producto | Cant.\nPapel | 3",
        ),
        ("<div>uno</div><div>dos</div><div><br></div><div>tres</div>", "uno\ndos\n\ntres"),
        ("<p>uno<br>dos</p><p>tres</p>", "uno\ndos\n\ntres"),
    ],
)
def test_html_only_mail_reads_right(html: str, text: str) -> None:
    assert html_to_text(html) == text


FORWARD = (
    "Les reenvío el error que nos llegó.\n\n"
    "De: Facturación Proveedor <facturas@proveedor.example>\n"
    "Enviado: lunes, 23 de noviembre de 2026 9:10\n"
    "Para: Ana Soto <ana@cliente.example>\n"
    "Asunto: Error en factura 4512\n\n"
    "La factura 4512 fue rechazada por el SII: folio fuera de rango.\n"
)


async def test_a_forward_opens_a_ticket_that_keeps_the_forwarded_message(gateway: Gateway) -> None:
    await send(gateway, make_mail("RV: Error en factura 4512", FORWARD, sender="Ana Soto <ana@cliente.example>"))
    await gateway.drain()
    [message] = (await ticket(gateway, "TK-000001"))["messages"]
    assert message["body"] == FORWARD.strip()  # the note and the supplier's mail below it


async def test_an_html_only_reply_keeps_only_what_the_customer_wrote(gateway: Gateway) -> None:
    await send(gateway, make_mail("Falla al emitir", sender="Ana Soto <ana@cliente.example>"))
    await gateway.drain()
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "Ana Soto <ana@cliente.example>", MAILBOX, "RE: [#TK-000001] Falla"
    reply["Message-ID"] = "<html-reply@cliente.example>"
    reply.set_content(
        "<div>Ya probamos con el <b>XML</b> nuevo y sigue igual.</div><div>Ana</div>"
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt"><p><b>De:</b> Soporte<br><b>Enviado:</b> lunes<br>'
        "<b>Para:</b> Ana<br><b>Asunto:</b> Falla</p></div><p>Hola Ana, ¿nos envía el XML?</p>",
        subtype="html",
    )
    await send(gateway, crlf(reply.as_bytes()))
    await gateway.drain()
    messages = (await ticket(gateway, "TK-000001"))["messages"]
    assert messages[-1]["body"] == "Ya probamos con el XML nuevo y sigue igual.\nAna"
