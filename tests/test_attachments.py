"""Customer files reach agents: attached to their notification up to a bound per mail, the
rest named with the command that gives them back byte for byte; an agent's signature logo
(an inline cid: image) is not sent on to the customer as a file."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from gateway.outbound import mime
from gateway.settings import Settings
from tests.conftest import MAILBOX, ReceivedMail, Sink, crlf, run_cli, send

CUSTOMER = "María José Pérez <mjperez@distribuidora-andes.example>"
REQUESTER = "mjperez@distribuidora-andes.example"
AGENTS = "agentes@estela.example"
AGENT = "Carla Soto <csoto@estela.example>"
# Every byte value, CR and LF among them: a copy that is not binary-safe shows. Over 256 KiB,
# so it is read from the store in more than one piece (database.BLOB_PIECE_BYTES).
PDF = b"%PDF-1.4\r\n" + bytes(range(256)) * 1200 + b"\n%%EOF\r\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes((index * 7 + 3) % 256 for index in range(30_000))


def customer_mail(files: list[tuple[str, str, bytes]]) -> bytes:
    message = EmailMessage()
    message["From"] = CUSTOMER
    message["To"] = MAILBOX
    message["Subject"] = "Factura rechazada"
    message["Message-ID"] = make_msgid(domain="distribuidora-andes.example")
    message.set_content("Hola, adjunto la factura y una captura del error.")
    for filename, content_type, content in files:
        maintype, subtype = content_type.split("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return crlf(message.as_bytes())


async def customer_sends(gateway: Gateway, relay: Sink, files: list[tuple[str, str, bytes]]) -> ReceivedMail:
    await send(gateway, customer_mail(files), [MAILBOX])
    await gateway.drain()
    [notice] = relay.handler.to(AGENTS)
    return notice


def files_of(mail: ReceivedMail) -> dict[str, bytes]:
    return {str(part.get_filename()): part.get_content() for part in mail.message.iter_attachments()}


def text_of(mail: ReceivedMail) -> str:
    return str(mail.message.get_body(("plain",)).get_content())


@pytest.fixture
async def small_bound_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """Agents' mail carries at most 100 000 bytes of files: the PDF (307 218) stays out."""
    outbound = settings.outbound.model_copy(update={"max_agent_attachment_bytes": 100_000})
    running = Gateway(settings.model_copy(update={"outbound": outbound}))
    await running.start()
    yield running
    await running.stop()


async def test_agents_notification_carries_the_customers_files_byte_for_byte(gateway: Gateway, relay: Sink) -> None:
    notice = await customer_sends(gateway, relay, [("factura 4512.pdf", "application/pdf", PDF),
                                                   ("captura.png", "image/png", PNG)])  # fmt: skip
    assert files_of(notice) == {"factura 4512.pdf": PDF, "captura.png": PNG}
    assert "attachments get" not in text_of(notice)
    [acknowledgement] = relay.handler.to(REQUESTER)
    assert files_of(acknowledgement) == {}  # the customer is not sent their own files back


async def test_files_past_the_bound_are_listed_with_the_command_that_gets_them(
    small_bound_gateway: Gateway, relay: Sink, config_path: Path
) -> None:
    notice = await customer_sends(small_bound_gateway, relay, [("factura 4512.pdf", "application/pdf", PDF),
                                                               ("captura.png", "image/png", PNG)])  # fmt: skip
    assert files_of(notice) == {"captura.png": PNG}  # the small file after the large one still goes
    listing = json.loads(run_cli(config_path, "attachments", "list", "TK-000001", "--json").stdout)
    pdf_id = next(file["id"] for file in listing if file["filename"] == "factura 4512.pdf")
    text = text_of(notice)
    assert "Adjuntos que no van en este correo" in text
    assert f"factura 4512.pdf (300.0 KiB): ticket-gateway attachments get {pdf_id} -o ARCHIVO" in text
    html = str(notice.message.get_body(("html",)).get_content())
    assert f"ticket-gateway attachments get {pdf_id}" in html
    got = run_cli(config_path, "attachments", "get", str(pdf_id))  # what the agent was told to run
    assert got.returncode == 0 and got.stdout == PDF


async def test_attachments_list_and_get_give_the_stored_files_back(
    gateway: Gateway, relay: Sink, config_path: Path, tmp_path: Path
) -> None:
    await customer_sends(gateway, relay, [("factura 4512.pdf", "application/pdf", PDF),
                                          ("captura.png", "image/png", PNG)])  # fmt: skip
    listed = run_cli(config_path, "attachments", "list", "tk-000001", "--json")
    assert listed.returncode == 0, listed.stderr.decode()
    files = json.loads(listed.stdout)
    assert [(f["filename"], f["content_type"], f["size"]) for f in files] == [
        ("factura 4512.pdf", "application/pdf", len(PDF)),
        ("captura.png", "image/png", len(PNG)),
    ]
    assert all(f["direction"] == "inbound" and f["message"] and len(f["sha256"]) == 64 for f in files)
    plain = run_cli(config_path, "attachments", "list", "TK-000001").stdout.decode()
    assert all(str(f["id"]) in plain and f["filename"] in plain for f in files)

    pdf, png = files
    target = tmp_path / "salida.pdf"
    written = run_cli(config_path, "attachments", "get", str(pdf["id"]), "-o", str(target))
    assert written.returncode == 0, written.stderr.decode()
    assert target.read_bytes() == PDF and written.stdout == b""
    assert run_cli(config_path, "attachments", "get", str(png["id"])).stdout == PNG

    missing = run_cli(config_path, "attachments", "get", "999")
    assert missing.returncode != 0 and b"no attachment 999" in missing.stderr and missing.stdout == b""
    unknown = run_cli(config_path, "attachments", "list", "TK-999999")
    assert unknown.returncode != 0 and b"no ticket TK-999999" in unknown.stderr


def test_attachments_commands_never_create_a_database(config_path: Path, tmp_path: Path) -> None:
    for args in (("list", "TK-000001"), ("get", "1")):
        result = run_cli(config_path, "attachments", *args)
        assert result.returncode == 66 and b"no database" in result.stderr
    assert not (tmp_path / "gateway.db").exists()


def agent_reply_with_signature_logo(notice: ReceivedMail) -> bytes:
    """As Outlook writes it: the logo a related part of the HTML, named by cid:; a real file too."""
    reply_to = str(notice.message["Reply-To"])
    message = EmailMessage()
    message["From"] = AGENT
    message["To"] = reply_to
    message["Subject"] = f"Re: {notice.message['Subject']}"
    message["Message-ID"] = make_msgid(domain="estela.example")
    message["In-Reply-To"] = str(notice.message["Message-ID"])
    message.set_content("Adjunto el parche.\n\nCarla Soto\nSoporte Estela")
    message.add_alternative(
        '<p>Adjunto el parche.</p><p>Carla Soto<br><img src="cid:logo.estela%40firma"></p>', subtype="html"
    )
    html = message.get_payload()[1]
    html.add_related(PNG, maintype="image", subtype="png", cid="<logo.estela@firma>", filename="image001.png")
    # Apple Mail gives every attachment a Content-ID: one the HTML never shows is a file all the same.
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="parche.pdf", cid="<p1@mac>")
    return crlf(message.as_bytes())


async def test_an_agents_signature_logo_is_not_sent_on_to_the_customer(
    gateway: Gateway, relay: Sink, config_path: Path
) -> None:
    notice = await customer_sends(gateway, relay, [])
    reply = agent_reply_with_signature_logo(notice)
    await send(gateway, reply, [str(notice.message["Reply-To"])], sender="csoto@estela.example")
    await gateway.drain()
    answer = relay.handler.to(REQUESTER)[-1]
    assert "Adjunto el parche." in text_of(answer)
    assert files_of(answer) == {"parche.pdf": PDF}
    stored = json.loads(run_cli(config_path, "attachments", "list", "TK-000001", "--json").stdout)
    assert sorted(f["filename"] for f in stored) == ["image001.png", "parche.pdf"]  # both kept


@pytest.mark.parametrize("sizes", [[1], [56, 1, 57], [100, 200, 300, 5], [262_144, 262_144, 7], [0, 57 * 3]])
def test_base64_lines_from_pieces_of_any_size_are_the_whole_files_encoding(sizes: list[int]) -> None:
    content = bytes((index * 31 + 7) % 256 for index in range(sum(sizes)))
    lines, start = mime.Base64Lines(), 0
    for size in sizes:
        lines.write(content[start : start + size])
        start += size
    assert b"".join(lines.done()) == base64.encodebytes(content).replace(b"\n", b"\r\n")
