"""`python -m bench.text`: the time of parse + text work for two large mails, no daemon.

(a) a 1 MB bottom-posted reply: two lines, 20,000 quoted `>` lines, a signature under them;
(b) a 5 MB HTML-only mail (Outlook-like paragraphs, Gmail's quote container at the end).
For each: parsing (parse_mail), the text work the desk needs (quote removal, HTML to text,
field lines, command lines), and the part of it that runs inside the pipeline's write
transaction. Only the gateway's public functions are called, so the same file measures an
older checkout: `cd <checkout> && PYTHONPATH=. .venv/bin/python <this file>`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from gateway.model import ParsedMail
from gateway.parsing.mail import parse_mail
from gateway.parsing.quotes import new_part
from gateway.rules.commands import parse_commands
from gateway.rules.fields import customer_fields

QUOTED_LINE = "> Desde esta manana no podemos emitir facturas ya."  # 50 bytes with its newline


def quoted_reply(quoted_lines: int = 20_000) -> bytes:
    """A reply that quotes the whole history and signs under it (bottom-posting, as some
    Outlook and mailing-list users do): every quoted line is followed by unquoted text."""
    body = "Hola, sigue fallando.\nRUT: 76.086.428-5\n\n" + f"{QUOTED_LINE}\n" * quoted_lines + "\nSaludos, Ana\n"
    return _mail("RE: [#TK-000001] Error al emitir", body, "plain", "8bit")


def html_only(size: int = 5 * 1024 * 1024) -> bytes:
    """An HTML-only mail of about `size` bytes: Outlook's paragraphs, then Gmail's quote."""
    paragraph = (
        '<div class="WordSection1"><p class="MsoNormal" style="margin:0cm">Desde esta ma&ntilde;ana no '
        "podemos emitir facturas electr&oacute;nicas: el SII rechaza los documentos.<o:p></o:p></p></div>\n"
    )
    quote = '<div class="gmail_quote"><div dir="ltr">El vie escribió:</div><blockquote>Hola</blockquote></div>'
    html = "<html><body>" + paragraph * (size // len(paragraph)) + quote + "</body></html>"
    return _mail("Error al emitir (HTML)", html, "html", "quoted-printable")


def _mail(subject: str, body: str, subtype: str, encoding: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ana@cliente.example", "soporte@estela.example", subject
    message["Message-ID"] = f"<bench-text-{subtype}@cliente.example>"
    message.set_content(body, subtype=subtype, cte=encoding)
    return message.as_bytes()


def measure(raw: bytes) -> dict[str, float]:
    """Seconds: parsing, the text work, and what of it runs under the write lock."""
    began = time.perf_counter()
    mail = parse_mail(raw)
    parsed = time.perf_counter()
    new = new_part(mail.text, mail.html, mail.has_text_part)
    customer_fields(new)
    parse_commands(new, agent=False)
    worked = time.perf_counter()
    in_transaction = _in_transaction(mail, new)
    return {"parse_s": parsed - began, "text_s": worked - parsed, "in_transaction_s": in_transaction}


def _in_transaction(mail: ParsedMail, new: str) -> float:
    """The text work left inside the pipeline's transaction: reading fields and commands
    where the parser worker finds the new part and its field lines, all of it in a checkout
    without `field_lines` (so an older build is measured the same way)."""
    try:
        from gateway.rules.fields import field_lines, fields_from  # absent from older checkouts
    except ImportError:
        began = time.perf_counter()
        new_part(mail.text, mail.html, mail.has_text_part)
        customer_fields(new)
        parse_commands(new, agent=False)
        return time.perf_counter() - began
    lines = field_lines(new)  # in the worker
    began = time.perf_counter()
    fields_from(lines, "CL")
    parse_commands(new, agent=False)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.text", description=__doc__.splitlines()[0])
    parser.add_argument("--quoted-lines", type=int, default=20_000, help="quoted lines in mail (a) (20000)")
    parser.add_argument("--html-mb", type=float, default=5.0, help="size of mail (b) in MB (5)")
    parser.add_argument("--json", type=Path, default=None, help="also save the figures here")
    args = parser.parse_args()
    mails = {
        f"(a) reply, {args.quoted_lines:,} quoted lines": quoted_reply(args.quoted_lines),
        f"(b) HTML-only, {args.html_mb:g} MB": html_only(int(args.html_mb * 1024 * 1024)),
    }
    results = {}
    print(f"{'':36} {'MB':>5} {'parse s':>8} {'text s':>8} {'in transaction s':>17}")
    for name, raw in mails.items():
        figures = measure(raw)
        results[name] = {"bytes": len(raw), **figures}
        print(
            f"{name:36} {len(raw) / 1e6:5.2f} {figures['parse_s']:8.2f} {figures['text_s']:8.2f}"
            f" {figures['in_transaction_s']:17.3f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
