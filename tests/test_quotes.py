"""The new part of a reply, for the mail clients our customers and agents use."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.parsing import quote_markers, quotes
from gateway.parsing.quotes import new_part

NEW = "Sigue fallando en Maipú.\n\nAndrés"


@pytest.mark.parametrize(
    ("client", "quoted"),
    [
        ("Gmail es", "El vie, 20 nov 2026 a las 11:40, Soporte LATAM <soporte@estela.example> escribió:\n> Hola"),
        (
            "Gmail es wrapped",
            "El vie, 20 nov 2026 a las 11:40, Soporte LATAM\n<soporte@estela.example> escribió:\n> Hola",
        ),
        ("Gmail en", "On Fri, Nov 20, 2026 at 11:40 AM Support <support@estela.example> wrote:\n> Hi"),
        ("Gmail pt", "Em sex., 20 de nov. de 2026 às 11:40, Suporte <s@estela.example> escreveu:\n> Olá"),
        ("Outlook es", "________________________________\nDe: Soporte LATAM <s@estela.example>\nEnviado: viernes"),
        ("Outlook desktop es", "De: Soporte LATAM [mailto:s@estela.example]\nEnviado el: viernes\nPara: Andrés"),
        ("Outlook en", "From: Support <s@estela.example>\nSent: Friday, November 20, 2026 11:05\nTo: Andrés"),
        ("Outlook pt", "De: Suporte <s@estela.example>\nEnviada em: sexta-feira\nPara: Andrés"),
        ("Outlook original", "-----Mensaje original-----\nDe: Soporte"),
        ("Outlook original en", "-----Original Message-----\nFrom: Support"),
        ("Apple Mail", "El 20 nov 2026, a las 11:40, Soporte LATAM <s@estela.example> escribió:\n\n> Hola"),
        ("iPhone en", "On Nov 20, 2026, at 11:40, Support <s@estela.example> wrote:\n\n> Hi"),
        ("Thunderbird", "El 20/11/26 a las 11:40, Soporte LATAM escribió:\n> Hola"),
        ("quoted block", "> Hola Andrés,\n> recibimos su solicitud.\n>"),
    ],
)
def test_quoted_history_is_cut(client: str, quoted: str) -> None:
    assert new_part(f"{NEW}\n\n{quoted}\n") == NEW


def test_inline_answers_between_quotes_are_kept() -> None:
    text = "> ¿Qué versión usa?\nLa 4.2\n> ¿Desde cuándo?\nDesde ayer"
    assert new_part(text) == text


@pytest.mark.parametrize(
    "html",
    [
        '<div dir="ltr">Sigue fallando.</div><div class="gmail_quote"><div>El vie escribió:</div>'
        "<blockquote>Hola</blockquote></div>",
        '<p>Sigue fallando.</p><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>De:</b> Soporte</div>',
        '<p>Sigue fallando.</p><blockquote type="cite">Hola</blockquote>',
    ],
)
def test_html_only_replies(html: str) -> None:
    assert new_part("", html, has_text_part=False) == "Sigue fallando."


OUR_OWN_FORWARDED = """Sigue fallando, ahora también en la sucursal Maipú.

Andrés

________________________________
De: Soporte LATAM <soporte.latam@estela.example>
Enviado: viernes, 20 de noviembre de 2026 11:05
Para: Andrés Muñoz <amunoz@logistica-sur.example>
Asunto: [#TK-000002] Reporte de inventario no genera

Hola Andrés, recibimos su solicitud con el número TK-000002."""


@pytest.mark.parametrize(
    ("ours", "expected"),
    [
        # Outlook in Spanish answers with "RV:" (reenviar) as often as "RE:": when what is
        # forwarded is our own mail, it is already in the ticket: only the words on top are new.
        (frozenset({"soporte.latam@estela.example"}), "Sigue fallando, ahora también en la sucursal Maipú.\n\nAndrés"),
        (frozenset({"soporte.chile@estela.example"}), OUR_OWN_FORWARDED),  # someone else's mail: all of it is new
        (frozenset(), OUR_OWN_FORWARDED),
    ],
)
def test_a_forward_of_our_own_mail_is_a_reply(ours: frozenset[str], expected: str) -> None:
    assert new_part(OUR_OWN_FORWARDED, subject="RV: reporte inventario", ours=ours) == expected


# Lines made of what the attribution tests look at: verbs, white space (Unicode too),
# colons, digits (Unicode ones too), letters glued to a verb, and a final newline.
_PIECES = st.sampled_from([*quote_markers.ATTRIBUTION_VERBS, "WROTE", " ", "\u00a0", "\t", ":", "::", "2", "²",
                           "①", " " * 16, "x", "Ana", "<a@x.example>", "\n", "escribió" + "x" * 30])  # fmt: skip


@given(st.lists(_PIECES, max_size=12).map("".join))
@example("El vie, Ana <a@x.example> wrote" + " " * 16 + ":")
@example("Ana escribió: wrote:\n")
@example("Am 20.11. schrieb Ana²")
def test_the_attribution_tests_read_as_their_plain_patterns_do(line: str) -> None:
    # The tests run on every line of every mail, so they read only a line's end and stop at
    # its first digit: they must still say what the whole-line pattern and str.isdigit say.
    assert quotes._ends_with_verb(line) == (quotes.VERB_END.search(line) is not None)
    assert quotes._has_digit(line) == any(character.isdigit() for character in line)
