"""The load: realistic Spanish support mail, replies with a ticket token, some with a
200 KB attachment; built once, in memory, with the standard library."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

MAILBOX = "soporte.latam@estela.example"
PARAGRAPHS = [
    "Desde esta mañana no podemos emitir facturas electrónicas. El SII rechaza todos los documentos "
    "con el código «Firma no válida». Ya reiniciamos el servicio y revisamos el certificado digital, "
    "que según el portal vence en marzo, pero el error continúa en las tres sucursales.",
    "Adjunto el detalle de lo que hicimos: cerramos sesión en todos los equipos, limpiamos la caché "
    "del navegador, reinstalamos el conector de firma y probamos con otro usuario administrador. "
    "En todos los casos el resultado es el mismo y el folio queda reservado sin emitirse.",
    "Necesitamos una solución antes del cierre de mes porque los despachos de la bodega de Maipú "
    "dependen de estas facturas. Si hace falta, podemos darles acceso remoto al servidor hoy mismo "
    "entre las 15:00 y las 18:00 (hora de Chile).",
    "Quedamos atentos a sus comentarios. Cualquier información adicional que necesiten (registros, "
    "capturas de pantalla o la versión exacta del módulo) se la enviamos de inmediato.",
]
SIGNATURE = (
    "\n\nSaludos cordiales,\nMaría José Pérez\nJefa de Administración\nDistribuidora Andes SpA\n"
    "RUT: 76.086.428-5\nTeléfono: +56 2 2345 6789"
)


@dataclass(frozen=True)
class BenchMail:
    message_id: str
    sender: str
    raw: bytes


def _body(rng: random.Random, target_bytes: int) -> str:
    text = "Hola equipo de soporte,\n\n"
    while len(text.encode()) < target_bytes - len(SIGNATURE.encode()):
        text += rng.choice(PARAGRAPHS) + "\n\n"
    return text + SIGNATURE


def build(index: int, rng: random.Random, reply_to_ticket: int | None, attachment: bytes | None) -> BenchMail:
    sender = f"cliente{index}@empresa{index % 97}.example"
    message = EmailMessage()
    message["From"] = f"Cliente Número {index} <{sender}>"
    message["To"] = f"Soporte LATAM <{MAILBOX}>"
    subject = "Error al emitir factura electrónica: rechazo del SII"
    message["Subject"] = f"RE: [#TK-{reply_to_ticket:06d}] {subject}" if reply_to_ticket else f"{subject} ({index})"
    message_id = make_msgid(idstring=str(index), domain="empresa.example")
    message["Message-ID"] = message_id
    body = _body(rng, 3000)
    message.set_content(body, cte="quoted-printable")
    paragraphs = "".join(f"<p>{paragraph}</p>" for paragraph in body.split("\n\n"))
    message.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html", cte="quoted-printable")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="registro de errores.pdf")
    raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return BenchMail(message_id.strip("<>"), sender, raw)


def corpus(count: int, seed: int = 7, reply_share: float = 0.2, attachment_share: float = 0.05) -> list[BenchMail]:
    """`count` mails: new requests (~6.5 KB), replies naming an earlier ticket, a share with 200 KB."""
    rng = random.Random(seed)
    attachment = os.urandom(200 * 1024)
    mails = []
    for index in range(count):
        roll = rng.random()
        reply_to = rng.randint(1, max(1, index // 2)) if roll < reply_share and index > 10 else None
        attach = attachment if reply_share <= roll < reply_share + attachment_share else None
        mails.append(build(index, rng, reply_to, attach))
    return mails


def large_mail(index: int, size: int) -> BenchMail:
    """One mail of about `size` bytes: a big attachment, as a scanner or an ERP export sends."""
    message = EmailMessage()
    sender = f"escaner{index}@empresa.example"
    message["From"], message["To"], message["Subject"] = sender, MAILBOX, f"Escaneo completo {index}"
    message_id = make_msgid(idstring=f"large{index}", domain="empresa.example")
    message["Message-ID"] = message_id
    message.set_content("Adjunto el escaneo completo del archivo.")
    message.add_attachment(
        os.urandom(size * 3 // 4), maintype="application", subtype="octet-stream", filename="escaneo.bin"
    )
    raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return BenchMail(message_id.strip("<>"), sender, raw)
