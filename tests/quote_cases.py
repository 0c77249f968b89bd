# ruff: noqa: E501, RUF001  (mail text as clients write it: long lines, Cyrillic letters)
"""A table of replies and forwards as real clients write them, with the exact new part.

Written for this project (issue 23): one case per client, language and class of reply.
Text cases are text/plain bodies; HTML cases are HTML-only mail (no text part).
`bench/quotes.py` prints the exact-match score of `gateway.parsing.quotes.new_part` on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    text: str = ""
    html: str = ""
    subject: str = "RE: [#TK-000012] Error al emitir facturas"


NEW = "Sigue fallando en la sucursal.\n\nSaludos,\nAndrés"
Q = "> Hola Andrés,\n> ¿nos puede enviar el XML?\n>\n> Soporte"
PLAIN = "Hola Andrés,\n¿nos puede enviar el XML?\n\nSoporte"


def _top(name: str, quote: str, new: str = NEW) -> Case:
    return Case(name, new, text=f"{new}\n\n{quote}\n")


TEXT_CASES = [
    # Spanish, English, Portuguese: the shapes that passed before.
    _top("gmail es", f"El vie, 20 nov 2026 a las 11:40, Soporte <soporte@estela.example> escribió:\n{Q}"),
    _top("gmail en", f"On Fri, Nov 20, 2026 at 11:40 AM Support <support@estela.example> wrote:\n{Q}"),
    _top("gmail pt", f"Em sex., 20 de nov. de 2026 às 11:40, Suporte <s@estela.example> escreveu:\n{Q}"),
    _top("outlook es", f"________________________________\nDe: Soporte <s@estela.example>\nEnviado: viernes\n{PLAIN}"),
    _top("outlook en original", f"-----Original Message-----\nFrom: Support\nSent: Friday\n{PLAIN}"),
    _top("apple mail es", f"El 20 nov 2026, a las 11:40, Soporte <s@estela.example> escribió:\n\n{Q}"),
    # 23.1 bottom-posting
    Case(
        "bottom thunderbird en",
        "Still failing on the Santiago branch.\n\nPeter",
        text=f"On 20/11/2026 11:40, Support wrote:\n{Q}\n\nStill failing on the Santiago branch.\n\nPeter\n",
    ),
    Case("bottom quote only", "La 4.2, desde ayer.", text=f"{Q}\n\nLa 4.2, desde ayer.\n"),
    Case(
        "bottom es with signature",
        "Adjunto el XML.\n\n-- \nAna Soto\nContabilidad",
        text=f"El 20/11/26 a las 11:40, Soporte escribió:\n{Q}\n\nAdjunto el XML.\n\n-- \nAna Soto\nContabilidad\n",
    ),
    Case(
        "inline answers kept",
        "> ¿Qué versión usa?\nLa 4.2\n> ¿Desde cuándo?\nDesde ayer",
        text="> ¿Qué versión usa?\nLa 4.2\n> ¿Desde cuándo?\nDesde ayer\n",
    ),
    Case(
        "inline after attribution",
        "Respuestas abajo.\n\nOn Fri, Nov 20, 2026 at 11:40 AM Support <s@x.example> wrote:"
        "\n> Version?\n4.2\n> Since when?\nYesterday",
        text="Respuestas abajo.\n\nOn Fri, Nov 20, 2026 at 11:40 AM Support <s@x.example> wrote:\n> Version?\n4.2\n"
        "> Since when?\nYesterday\n",
    ),
    Case(
        "quote only keeps something",
        "El 20/11/26 a las 11:40, Soporte escribió:\n" + Q,
        text="El 20/11/26 a las 11:40, Soporte escribió:\n" + Q + "\n",
    ),
    # 23.3 attribution shapes
    _top(
        "gmail wrapped in two",
        f"El vie, 20 nov 2026 a las 11:40, Soporte LATAM\n<soporte@estela.example> escribió:\n{Q}",
    ),
    _top(
        "wrapped in three",
        f"On Fri, Nov 20, 2026 at 11:40 AM\nSupport Team LATAM <support@estela.example>\nwrote:\n{Q}",
    ),
    _top(
        "zoho on wrote dashes",
        f"---- On Fri, 20 Nov 2026 11:40:00 -0300 Support <s@estela.example> wrote ----\n{PLAIN}",
    ),
    _top("android name wrote dashes", f"---- Soporte escribió ----\n{PLAIN}"),
    _top("gmail date first", f"2026-11-24 16:32 GMT-03:00 Soporte <soporte@estela.example>:\n{Q}"),
    _top("gmail ru date first", f"пт, 20 нояб. 2026 г. в 11:40, Поддержка <s@estela.example>:\n{Q}"),
    Case(
        "sent from my glued",
        "Sigue igual.\n\nSent from my iPhone",
        text=f"Sigue igual.\n\nSent from my iPhoneOn Nov 20, 2026, at 11:40, Support <s@x.example> wrote:\n\n{Q}\n",
    ),
    Case(
        "enviado desde mi glued",
        "Sigue igual.\n\nEnviado desde mi iPhone",
        text=f"Sigue igual.\n\nEnviado desde mi iPhoneEl 20 nov 2026, a las 11:40, Soporte <s@x.example> escribió:\n\n{Q}\n",
    ),
    _top("attribution then no >", f"On Fri, Nov 20, 2026 at 11:40 AM Support <s@estela.example> wrote:\n\n{PLAIN}"),
    _top(
        "android original message",
        f"-------- Original message --------\nFrom: Support <s@x.example>\nDate: 11/20/26 11:40\n{PLAIN}",
    ),
    # 23.4 languages
    _top("de gmail", f"Am Fr., 20. Nov. 2026 um 11:40 Uhr schrieb Support <s@x.example>:\n{Q}"),
    _top("de thunderbird", f"Am 20.11.2026 um 11:40 schrieb Support:\n{Q}"),
    _top(
        "de outlook",
        f"-----Ursprüngliche Nachricht-----\nVon: Support <s@x.example>\nGesendet: Freitag, 20. November 2026 11:40\nAn: Andrés\nBetreff: AW: Fehler\n\n{PLAIN}",
    ),
    _top(
        "de outlook block",
        f"Von: Support <s@x.example>\nGesendet: Freitag, 20. November 2026 11:40\nAn: Andrés\nBetreff: Fehler\n\n{PLAIN}",
    ),
    _top("fr gmail", f"Le ven. 20 nov. 2026 à 11:40, Support <s@x.example> a écrit :\n{Q}"),
    _top(
        "fr outlook",
        f"De : Support <s@x.example>\nEnvoyé : vendredi 20 novembre 2026 11:40\nÀ : Andrés\nObjet : Erreur\n\n{PLAIN}",
    ),
    _top("fr original", f"-------- Message d'origine --------\nDe : Support\nDate : 20/11/2026\n{PLAIN}"),
    _top("it gmail", f"Il giorno ven 20 nov 2026 alle ore 11:40 Support <s@x.example> ha scritto:\n{Q}"),
    _top(
        "it outlook",
        f"Da: Support <s@x.example>\nInviato: venerdì 20 novembre 2026 11:40\nA: Andrés\nOggetto: Errore\n\n{PLAIN}",
    ),
    _top("it original", f"-----Messaggio originale-----\nDa: Support\nInviato: venerdì\n{PLAIN}"),
    _top("nl gmail", f"Op vr 20 nov. 2026 om 11:40 schreef Support <s@x.example>:\n{Q}"),
    _top(
        "nl outlook",
        f"Van: Support <s@x.example>\nVerzonden: vrijdag 20 november 2026 11:40\nAan: Andrés\nOnderwerp: Fout\n\n{PLAIN}",
    ),
    _top("nl original", f"-----Oorspronkelijk bericht-----\nVan: Support\nVerzonden: vrijdag\n{PLAIN}"),
    _top("pl gmail", f"pt., 20 lis 2026 o 11:40 Support <s@x.example> napisał(a):\n{Q}"),
    _top("pl thunderbird", f"W dniu 20.11.2026 o 11:40, Support pisze:\n{Q}"),
    _top(
        "pl outlook",
        f"Od: Support <s@x.example>\nWysłano: piątek, 20 listopada 2026 11:40\nDo: Andrés\nTemat: Błąd\n\n{PLAIN}",
    ),
    _top("ru thunderbird", f"20.11.2026 11:40, Support пишет:\n{Q}"),
    _top(
        "ru outlook",
        f"От: Support <s@x.example>\nОтправлено: 20 ноября 2026 г. 11:40\nКому: Andrés\nТема: Ошибка\n\n{PLAIN}",
    ),
    _top("ru original", f"-------- Исходное сообщение --------\nОт: Support\nДата: 20.11.2026\n{PLAIN}"),
    _top("sv gmail", f"Den fre 20 nov. 2026 kl 11:40 skrev Support <s@x.example>:\n{Q}"),
    _top(
        "sv outlook",
        f"Från: Support <s@x.example>\nSkickat: den 20 november 2026 11:40\nTill: Andrés\nÄmne: Fel\n\n{PLAIN}",
    ),
    _top("no gmail", f"fre. 20. nov. 2026 kl. 11:40 skrev Support <s@x.example>:\n{Q}"),
    _top(
        "no outlook",
        f"Fra: Support <s@x.example>\nSendt: fredag 20. november 2026 11:40\nTil: Andrés\nEmne: Feil\n\n{PLAIN}",
    ),
    _top("da gmail", f"Den fre. 20. nov. 2026 kl. 11.40 skrev Support <s@x.example>:\n{Q}"),
    _top("da original", f"-----Oprindelig meddelelse-----\nFra: Support\nSendt: 20. november 2026\n{PLAIN}"),
    _top("fi gmail", f"pe 20. marrask. 2026 klo 11.40 Support <s@x.example> kirjoitti:\n{Q}"),
    _top(
        "fi outlook",
        f"Lähettäjä: Support <s@x.example>\nLähetetty: perjantai 20. marraskuuta 2026 11.40\nVastaanottaja: Andrés\nAihe: Virhe\n\n{PLAIN}",
    ),
    _top("vi gmail", f"Vào Th 6, 20 thg 11, 2026 vào lúc 11:40 Support <s@x.example> đã viết:\n{Q}"),
    _top(
        "vi outlook",
        f"Từ: Support <s@x.example>\nĐã gửi: Thứ Sáu, 20 tháng 11, 2026 11:40\nĐến: Andrés\nChủ đề: Lỗi\n\n{PLAIN}",
    ),
    # 23.6 signature below the quote
    Case("signature below quote", "Adjunto el XML.", text=f"Adjunto el XML.\n\n{Q}\n\n-- \nAna Soto\nContabilidad\n"),
    Case(
        "signature below attribution quote",
        "Adjunto el XML.",
        text=f"Adjunto el XML.\n\nOn Fri, Nov 20, 2026, Support <s@x.example> wrote:\n{Q}\n--\nAna\n",
    ),
    # 23.5 / 15.2 forwards
    Case(
        "rv outlook forward",
        "Les reenvío el error.\n\nDe: Proveedor <p@prov.example>\nEnviado: lunes, 23 de noviembre de 2026 9:10\n"
        "Para: Ana <ana@cliente.example>\nAsunto: Error en factura 4512\n\nLa factura 4512 fue rechazada por el SII.",
        subject="RV: Error en factura 4512",
        text="Les reenvío el error.\n\nDe: Proveedor <p@prov.example>\nEnviado: lunes, 23 de noviembre de 2026 9:10\n"
        "Para: Ana <ana@cliente.example>\nAsunto: Error en factura 4512\n\nLa factura 4512 fue rechazada por el SII.\n",
    ),
    Case(
        "gmail fwd en",
        "FYI\n\n---------- Forwarded message ---------\nFrom: Bank <b@bank.example>\nDate: Mon, Nov 23, 2026\n"
        "Subject: Payment failed\n\nYour payment failed.",
        subject="Fwd: Payment failed",
        text="FYI\n\n---------- Forwarded message ---------\nFrom: Bank <b@bank.example>\nDate: Mon, Nov 23, 2026\n"
        "Subject: Payment failed\n\nYour payment failed.\n",
    ),
    Case(
        "gmail fwd es in a reply",
        "FYI, mira lo que llegó.\n\n-------- Mensaje reenviado --------\nDe: SII <n@sii.example>\n"
        "Fecha: 23 nov 2026\nAsunto: Rechazo\n\nDocumento rechazado.",
        text="FYI, mira lo que llegó.\n\n-------- Mensaje reenviado --------\nDe: SII <n@sii.example>\nFecha: 23 nov 2026\n"
        "Asunto: Rechazo\n\nDocumento rechazado.\n",
    ),
    Case(
        "apple forward es",
        "Mira esto.\n\nInicio del mensaje reenviado:\n\nDe: SII <n@sii.example>\nFecha: 23 de noviembre de 2026\n"
        "Asunto: Rechazo\n\nDocumento rechazado.",
        subject="Fwd: Rechazo",
        text="Mira esto.\n\nInicio del mensaje reenviado:\n\nDe: SII <n@sii.example>\nFecha: 23 de noviembre de 2026\n"
        "Asunto: Rechazo\n\nDocumento rechazado.\n",
    ),
    Case(
        "fw outlook en",
        "See below.\n\nFrom: Vendor <v@vendor.example>\nSent: Monday, November 23, 2026 9:10 AM\nTo: Ana\n"
        "Subject: Invoice 4512\n\nInvoice 4512 was rejected.",
        subject="FW: Invoice 4512",
        text="See below.\n\nFrom: Vendor <v@vendor.example>\nSent: Monday, November 23, 2026 9:10 AM\nTo: Ana\n"
        "Subject: Invoice 4512\n\nInvoice 4512 was rejected.\n",
    ),
    Case(
        "wg german forward",
        "Zur Info.\n\nVon: Lieferant <l@x.example>\nGesendet: Montag, 23. November 2026 09:10\nAn: Ana\n"
        "Betreff: Rechnung\n\nRechnung abgelehnt.",
        subject="WG: Rechnung",
        text="Zur Info.\n\nVon: Lieferant <l@x.example>\nGesendet: Montag, 23. November 2026 09:10\nAn: Ana\n"
        "Betreff: Rechnung\n\nRechnung abgelehnt.\n",
    ),
    Case(
        "reply to a forward is a reply",
        NEW,
        subject="RE: FW: Error",
        text=f"{NEW}\n\nFrom: Support <s@x.example>\nSent: Friday\nTo: Andrés\nSubject: FW: Error\n\n{PLAIN}\n",
    ),
    # plain text that looks a bit like markers but is not
    Case(
        "not a header",
        "De: mi parte, todo bien.\nGracias por la ayuda.",
        text="De: mi parte, todo bien.\nGracias por la ayuda.\n",
    ),
    Case(
        "no quote at all",
        "Hola,\n\nno puedo emitir facturas.\n\nAna",
        text="Hola,\n\nno puedo emitir facturas.\n\nAna\n",
        subject="Error al emitir",
    ),
]

GMAIL_QUOTE = (
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">El vie, 20 nov 2026 a las 11:40, Soporte '
    '&lt;<a href="mailto:s@x.example">s@x.example</a>&gt; escribió:<br></div>'
    '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">Hola Andrés,<br>¿nos envía el XML?</blockquote></div>'
)
OUTLOOK_HEADER = (
    "<b>De:</b> Soporte &lt;s@x.example&gt;<br><b>Enviado:</b> viernes, 20 de noviembre de 2026 11:40<br>"
    "<b>Para:</b> Andrés<br><b>Asunto:</b> Falla</div><div>Hola Andrés, ¿nos envía el XML?</div>"
)
HTML_NEW = '<div dir="ltr">Sigue fallando en la sucursal.<div><br></div><div>Saludos,</div><div>Andrés</div></div>'

HTML_CASES = [
    Case("html gmail", NEW, html=HTML_NEW + GMAIL_QUOTE),
    Case("html plain blockquote", "Sigue fallando.", html="<p>Sigue fallando.</p><blockquote>Hola Andrés</blockquote>"),
    Case(
        "html apple cite",
        "Sigue fallando.",
        html='<div>Sigue fallando.</div><div><br><blockquote type="cite"><div>El 20 nov 2026, a las 11:40, Soporte '
        "&lt;s@x.example&gt; escribió:</div><div>Hola</div></blockquote></div>",
    ),
    Case(
        "html outlook web",
        "Sigue fallando.",
        html='<div>Sigue fallando.</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri">' + OUTLOOK_HEADER,
    ),
    Case(
        "html outlook desktop bordered",
        "Sigue fallando.",
        html='<div class="WordSection1"><p class="MsoNormal">Sigue fallando.<o:p></o:p></p><div><div style="border:none;'
        'border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal">' + OUTLOOK_HEADER,
    ),
    Case(
        "html windows mail hr",
        "Sigue fallando.",
        html="<div>Sigue fallando.</div><div><br></div><hr><div>" + OUTLOOK_HEADER,
    ),
    Case(
        "html hotmail stopspelling",
        "Sigue fallando.",
        html='<div>Sigue fallando.</div><hr id="stopSpelling">Date: Fri, 20 Nov 2026<br>From: s@x.example<br>'
        "Subject: Falla<br><br>Hola",
    ),
    Case(
        "html yahoo",
        "Sigue fallando.",
        html='<div>Sigue fallando.</div><div id="yahoo_quoted_1234" class="yahoo_quoted"><div>On Friday, November 20, '
        "2026, 11:40:00 AM GMT-3, Support &lt;s@x.example&gt; wrote:</div><div><br></div><div>Hola</div></div>",
    ),
    Case(
        "html mail.ru",
        "Всё ещё не работает.",
        html="<div>Всё ещё не работает.</div><div><br>Пятница, 20 ноября 2026, 11:40 +03:00 от Support "
        '&lt;s@x.example&gt;:<br><blockquote style="border-left:1px solid #0857A6;margin:10px">'
        '<div id="style_1234" class="mail-quote-collapse">Здравствуйте</div></blockquote></div>',
    ),
    Case(
        "html yandex",
        "Всё ещё не работает.",
        html='<div>Всё ещё не работает.</div><div>&nbsp;</div><div>20.11.2026, 11:40, "Support" '
        "&lt;s@x.example&gt;:</div><blockquote><div>Здравствуйте</div></blockquote>",
    ),
    Case(
        "html thunderbird bottom",
        "Sigue fallando.",
        html='<div class="moz-cite-prefix">El 20/11/26 a las 11:40, Soporte escribió:<br></div><blockquote type="cite">'
        "Hola</blockquote><p>Sigue fallando.</p>",
    ),
    Case(
        "html attribution text only",
        "Sigue fallando.",
        html="<p>Sigue fallando.</p><p>Am 20.11.2026 um 11:40 schrieb Support:</p><p>Hallo Andrés</p>",
    ),
    Case(
        "html outlook french block no container",
        "Toujours en panne.",
        html="<p>Toujours en panne.</p><p><b>De :</b> Support<br><b>Envoyé :</b> vendredi<br><b>À :</b> Andrés<br>"
        "<b>Objet :</b> Panne</p><p>Bonjour</p>",
    ),
    Case(
        "html signature below quote",
        "Sigue fallando.",
        html="<p>Sigue fallando.</p><blockquote>Hola</blockquote><p>-- <br>Ana Soto</p>",
    ),
    Case(
        "html inline words",
        "Adjunto el XML del documento 4512.",
        html="<p>Adjunto el <b>XML</b> del documento <i>4512</i>.</p>",
    ),
    Case(
        "html forward outlook",
        "Les reenvío el error.\n\nDe: Proveedor\nEnviado: lunes\nPara: Ana\nAsunto: Error en factura 4512\n\n"
        "La factura fue rechazada.",
        subject="RV: Error en factura 4512",
        html='<p>Les reenvío el error.</p><div style="border:none;border-top:solid #E1E1E1 1.0pt"><p><b>De:</b> '
        "Proveedor<br><b>Enviado:</b> lunes<br><b>Para:</b> Ana<br><b>Asunto:</b> Error en factura 4512</p></div>"
        "<p>La factura fue rechazada.</p>",
    ),
]


# More clients and languages (issue 23's table of at least 100), text then HTML.
PT_NEW = "Segue o XML em anexo.\n\nObrigada,\nAna"
RU_NEW = "Всё ещё не работает.\n\nСпасибо,\nИван"
MORE_TEXT_CASES = [
    _top("gmail android es", f"El vie., 20 de nov. de 2026 11:40 a. m., Soporte <s@x.example> escribió:\n\n{Q}"),
    Case(
        "gmail ios pt bottom",
        f"{PT_NEW}\n\nEnviado do meu iPhone",
        text=f"Em 20 de nov. de 2026, à(s) 11:40, Suporte <s@x.example> escreveu:\n\n{Q}\n\n{PT_NEW}\n\nEnviado do meu iPhone\n",
    ),
    Case(
        "iphone quoted attribution",
        "Still broken.\n\nSent from my iPhone",
        text=f"Still broken.\n\nSent from my iPhone\n\n> On Nov 20, 2026, at 11:40 AM, Support <s@x.example> wrote:\n>\n{Q}\n",
    ),
    _top(
        "outlook android en",
        "________________________________\nFrom: Support <s@x.example>\nSent: Friday, November 20, 2026 11:40:00 AM\n"
        f"To: Andrés\nSubject: RE: Error\n\n{PLAIN}",
        new=f"{NEW}\n\nGet Outlook for Android",
    ),
    _top(
        "outlook web pt no rule",
        f"De: Suporte <s@x.example>\nEnviado: sexta-feira, 20 de novembro de 2026 11:40\nPara: Ana\nAssunto: RE: Erro\n\n{PLAIN}",
        new=PT_NEW,
    ),
    _top(
        "outlook pt original enviada em",
        "-----Mensagem original-----\nDe: Suporte [mailto:s@x.example]\nEnviada em: sexta-feira, 20 de novembro de 2026 11:40\n"
        f"Para: Ana\nAssunto: Erro\n\n{PLAIN}",
        new=PT_NEW,
    ),
    Case(
        "thunderbird de interleaved",
        "Am 20.11.2026 um 11:40 schrieb Support:\n> Welche Version?\nDie 4.2.\n> Seit wann?\nSeit gestern.\n\nGruß\nPeter",
        text="Am 20.11.2026 um 11:40 schrieb Support:\n> Welche Version?\nDie 4.2.\n> Seit wann?\nSeit gestern.\n\nGruß\nPeter\n",
    ),
    Case(
        "interleaved en quoted tail",
        "See my answers below.\n\n> 1. Which version?\n4.2\n> 2. Which branch?\nSantiago",
        text="See my answers below.\n\n> 1. Which version?\n4.2\n> 2. Which branch?\nSantiago\n\n> Thanks,\n> Support\n",
    ),
    _top(
        "yahoo text indented",
        "    On Friday, November 20, 2026, 11:40:00 AM GMT-3, Support <s@x.example> wrote:\n\n    Hello Andrés,\n"
        "    can you send the XML?",
        new="Still failing.",
    ),
    _top("zoho es dashes", f"---- El vie, 20 nov 2026 11:40:00 -0300 Soporte <s@x.example> escribió ----\n{PLAIN}"),
    _top("mail.ru text", "Пятница, 20 ноября 2026, 11:40 +03:00 от Support <s@x.example>:\n> Здравствуйте", new=RU_NEW),
    _top("yandex text", '20.11.2026, 11:40, "Support" <s@x.example>:\n> Здравствуйте', new=RU_NEW),
    _top(
        "proton en",
        f"On Friday, November 20th, 2026 at 11:40, Support <s@x.example> wrote:\n\n{Q}",
        new="Still failing.\n\nSent with Proton Mail secure email.",
    ),
    _top(
        "lotus notes tabs",
        f"From:\tSupport <s@x.example>\nTo:\tAna <ana@x.example>\nDate:\t20/11/2026 11:40\nSubject:\tRE: Error\n\n{PLAIN}",
        new="Still failing.\n\nAna",
    ),
    Case(
        "customer's own De: lines",
        "Datos del traslado:\nDe: bodega Santiago\nA: sucursal Temuco\nFecha: 18/11/2026\n\nNo ha llegado nada.",
        text="Datos del traslado:\nDe: bodega Santiago\nA: sucursal Temuco\nFecha: 18/11/2026\n\nNo ha llegado nada.\n",
    ),
    Case(
        "customer's own wrote",
        "Hi,\n\nOn Monday our accountant wrote to me:\nthe XML is fine, the certificate is not.\n\nCan you check?",
        text="Hi,\n\nOn Monday our accountant wrote to me:\nthe XML is fine, the certificate is not.\n\nCan you check?\n",
    ),
    Case(
        "web form labels",
        "De: Ana Soto <ana@cliente.example>\nFecha: 20/11/2026 11:40\nAsunto: Facturas rechazadas\n\nMensaje:\nNo puedo emitir.",
        text="De: Ana Soto <ana@cliente.example>\nFecha: 20/11/2026 11:40\nAsunto: Facturas rechazadas\n\nMensaje:\nNo puedo emitir.\n",
        subject="Formulario de contacto: Facturas rechazadas",
    ),
    Case(
        "forward inside reply en",
        "Please see the supplier's note.\n\n---------- Forwarded message ---------\nFrom: Vendor <v@x.example>\n"
        "Date: Mon, Nov 23, 2026\nSubject: Invoice\n\nInvoice rejected.",
        text="Please see the supplier's note.\n\n---------- Forwarded message ---------\nFrom: Vendor <v@x.example>\n"
        f"Date: Mon, Nov 23, 2026\nSubject: Invoice\n\nInvoice rejected.\n\nOn Fri, Nov 20, 2026 at 11:40 AM Support <s@x.example> wrote:\n{Q}\n",
    ),
    Case(
        "thunderbird fr forward",
        "Voir ci-dessous.\n\n-------- Message transféré --------\nSujet : Facture\nDate : 23/11/2026\n"
        "De : Fournisseur <f@x.example>\nPour : Ana\n\nFacture rejetée.",
        subject="TR: Facture",
        text="Voir ci-dessous.\n\n-------- Message transféré --------\nSujet : Facture\nDate : 23/11/2026\n"
        "De : Fournisseur <f@x.example>\nPour : Ana\n\nFacture rejetée.\n",
    ),
    Case(
        "apple forward it",
        "Vedi sotto.\n\nInizio messaggio inoltrato:\n\nDa: Fornitore <f@x.example>\nOggetto: Fattura\n\nFattura respinta.",
        subject="I: Fattura",
        text="Vedi sotto.\n\nInizio messaggio inoltrato:\n\nDa: Fornitore <f@x.example>\nOggetto: Fattura\n\nFattura respinta.\n",
    ),
    _top(
        "fr wrapped in three",
        f"Le ven. 20 nov. 2026 à 11:40, Service\nClient LATAM <support@estela.example> a\nécrit :\n{Q}",
    ),
    _top(
        "de wrapped in two", f"Am Fr., 20. Nov. 2026 um 11:40 Uhr schrieb Support Team\n<support@estela.example>:\n{Q}"
    ),
    _top(
        "it attribution then no >",
        f"Il giorno ven 20 nov 2026 alle ore 11:40 Support <s@x.example> ha scritto:\n\n{PLAIN}",
    ),
    _top(
        "sv original", f"-----Ursprungligt meddelande-----\nFrån: Support\nSkickat: den 20 november 2026 11:40\n{PLAIN}"
    ),
    _top("no thunderbird", f"Den 20.11.2026 kl. 11:40, skrev Support:\n{Q}"),
    _top(
        "da outlook", f"Fra: Support <s@x.example>\nSendt: 20. november 2026 11:40\nTil: Andrés\nEmne: Fejl\n\n{PLAIN}"
    ),
    _top("fi thunderbird", f"Support kirjoitti 20.11.2026 klo 11.40:\n{Q}"),
    _top(
        "pl original", f"-----Wiadomość oryginalna-----\nOd: Support\nWysłano: piątek, 20 listopada 2026 11:40\n{PLAIN}"
    ),
    Case(
        "vi bottom",
        "Vẫn còn lỗi.\n\nCảm ơn,\nMinh",
        text=f"Vào 11:40 20/11/2026, Support đã viết:\n{Q}\n\nVẫn còn lỗi.\n\nCảm ơn,\nMinh\n",
    ),
    Case(
        "de signature below attribution quote",
        "Anbei das XML.",
        text=f"Anbei das XML.\n\nAm 20.11.2026 um 11:40 schrieb Support <s@x.example>:\n{Q}\n\n-- \nPeter Müller\nBuchhaltung\n",
    ),
    Case(
        "sv bottom with signature",
        "Fortfarande fel.\n\n-- \nErik",
        text=f"Den 20 nov. 2026 kl 11:40 skrev Support <s@x.example>:\n{Q}\n\nFortfarande fel.\n\n-- \nErik\n",
    ),
]

MORE_HTML_CASES = [
    Case(
        "html gmail pt signature",
        "Segue o XML.\n\n--\nAna Souza\nFinanceiro",
        html='<div dir="ltr">Segue o XML.<br clear="all"><div><br></div>-- <br><div dir="ltr" class="gmail_signature">'
        'Ana Souza<br>Financeiro</div></div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">Em sex., 20 '
        'de nov. de 2026 às 11:40, Suporte &lt;s@x.example&gt; escreveu:<br></div><blockquote class="gmail_quote">'
        "Olá</blockquote></div>",
    ),
    Case(
        "html outlook web en",
        "Still failing.",
        html='<div>Still failing.</div><hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
        "<b>From:</b> Support<br><b>Sent:</b> Friday<br><b>To:</b> Ana<br><b>Subject:</b> Error</div><div>Hello</div>",
    ),
    Case(
        "html proton",
        "Still failing.\n\nSent with Proton Mail secure email.",
        html='<div>Still failing.</div><div><br></div><div class="protonmail_signature_block">Sent with Proton Mail '
        'secure email.</div><div><br></div><div class="protonmail_quote">On Friday, November 20th, 2026 at 11:40, '
        'Support &lt;s@x.example&gt; wrote:<br><blockquote class="protonmail_quote">Hello</blockquote></div>',
    ),
    Case(
        "html zoho",
        "Sigue fallando.",
        html='<div>Sigue fallando.</div><div class="zmail_extra"><div>---- El vie, 20 nov 2026 11:40:00 -0300 '
        "Soporte &lt;s@x.example&gt; escribió ----</div><blockquote>Hola</blockquote></div>",
    ),
    Case(
        "html yahoo android",
        "Sigue fallando.\nEnviado desde Yahoo Mail para Android",
        html='<div>Sigue fallando.</div><div id="ymail_android_signature">Enviado desde Yahoo Mail para Android</div>'
        '<div class="yahoo_quoted">El vie., 20 de nov. de 2026 a la(s) 11:40, Soporte&lt;s@x.example&gt; escribió:'
        "<blockquote>Hola</blockquote></div>",
    ),
    Case(
        "html gmail forward inside reply",
        "FYI\n\n---------- Forwarded message ---------\nFrom: Bank <b@bank.example>\nDate: Mon, Nov 23, 2026\n"
        "Subject: Payment failed\n\nYour payment failed.",
        html='<div dir="ltr">FYI<br><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">---------- Forwarded '
        'message ---------<br>From: Bank &lt;<a href="mailto:b@bank.example">b@bank.example</a>&gt;<br>Date: Mon, '
        "Nov 23, 2026<br>Subject: Payment failed<br></div><br><br>Your payment failed.</div></div>",
    ),
    Case(
        "html outlook desktop de",
        "Immer noch defekt.",
        html='<p class="MsoNormal">Immer noch defekt.</p><div style="border:none;border-top:solid #B5C4DF 1.0pt">'
        "<p><b>Von:</b> Support<br><b>Gesendet:</b> Freitag<br><b>An:</b> Ana<br><b>Betreff:</b> Fehler</p></div>"
        "<p>Hallo</p>",
    ),
    Case(
        "html thunderbird fr interleaved",
        "Le 20/11/2026 à 11:40, Support a écrit :\n> Quelle version ?\nLa 4.2.\n> Depuis quand ?\nDepuis hier.",
        html='<div class="moz-cite-prefix">Le 20/11/2026 à 11:40, Support a écrit :<br></div><blockquote type="cite">'
        'Quelle version ?</blockquote>La 4.2.<br><blockquote type="cite">Depuis quand ?</blockquote>Depuis hier.<br>',
    ),
]

CASES = TEXT_CASES + HTML_CASES + MORE_TEXT_CASES + MORE_HTML_CASES
