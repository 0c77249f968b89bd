# ruff: noqa: RUF001  (Cyrillic and typographic letters are the markers themselves)
"""The words mail clients put above quoted history, per language and client: one table.

Pure data for gateway.parsing.quotes. Each entry names the language or client it comes from, so
a new locale is a line here, not a new pattern. Phrases are compared lower-cased.
"""

from __future__ import annotations

import re

# The verb of an attribution line ("On …, Ana <a@x> wrote:"), as Gmail, Apple Mail,
# Outlook for Mac, Thunderbird and phone clients write it in each language.
ATTRIBUTION_VERBS = (
    "wrote", "writes",  # en
    "escribió", "escribio", "escribe",  # es
    "escreveu",  # pt
    "a écrit", "a ecrit",  # fr
    "schrieb",  # de
    "ha scritto", "scrisse",  # it
    "schreef",  # nl
    "napisał(a)", "napisał", "napisała", "pisze",  # pl
    "написал(а)", "написал", "написала", "пишет",  # ru
    "skrev",  # sv, no, da
    "kirjoitti",  # fi
    "đã viết", "viết",  # vi
)  # fmt: skip

# Words an attribution line starts with before its date ("El vie", "Am 20.11.", "W dniu").
ATTRIBUTION_OPENERS = (
    "on", "el", "em", "le", "am", "il", "op", "den", "w dniu", "dnia", "vào", "в", "lähettäjä",
)  # fmt: skip

# Separator lines, once dashes, underscores, asterisks, spaces and a final colon are
# stripped: Outlook's "-----Original Message-----" in each language, Android's "--------
# Original message --------", Gmail's "---------- Forwarded message ---------" and Apple
# Mail's "Begin forwarded message:".
REPLY_SEPARATORS = frozenset({
    "original message", "mensaje original", "mensagem original", "message d'origine", "message d’origine",
    "ursprüngliche nachricht", "messaggio originale", "oorspronkelijk bericht", "oorspronkelijk e-mailbericht",
    "oryginalna wiadomość", "wiadomość oryginalna", "исходное сообщение", "ursprungligt meddelande",
    "opprinnelig melding", "oprindelig meddelelse", "alkuperäinen viesti", "thư gốc",
})  # fmt: skip
FORWARD_SEPARATORS = frozenset({
    "forwarded message", "begin forwarded message",  # en: Gmail, Apple Mail
    "mensaje reenviado", "inicio del mensaje reenviado", "mensaje reenviado original",  # es
    "mensagem encaminhada", "mensagem reencaminhada", "início da mensagem reencaminhada",
    "começo da mensagem encaminhada",  # pt
    "message transféré", "début du message réexpédié", "début du message transféré",  # fr
    "weitergeleitete nachricht", "anfang der weitergeleiteten nachricht",  # de
    "messaggio inoltrato", "inizio messaggio inoltrato",  # it
    "doorgestuurd bericht", "begin doorgestuurd bericht",  # nl
    "wiadomość przekazana dalej", "przekazana wiadomość", "początek przekazywanej wiadomości",  # pl
    "пересылаемое сообщение", "пересланное сообщение", "начало пересылаемого сообщения",  # ru
    "vidarebefordrat meddelande", "vidarebefordrat brev",  # sv
    "videresendt melding", "videresendt meddelelse", "videresendt besked", "start på videresendt besked",  # no, da
    "välitetty viesti", "välitetty viesti alkaa",  # fi
    "thư đã chuyển tiếp", "thư chuyển tiếp",  # vi
})  # fmt: skip

# The header block Outlook, Windows Mail and Gmail's forward put above the quoted mail
# ("De: … / Enviado: … / Para: … / Asunto: …"), per label kind.
HEADER_LABELS = {
    "from": ("from", "de", "von", "da", "van", "od", "от", "från", "fra", "lähettäjä", "từ"),
    "sent": (
        "sent", "date", "enviado", "enviado el", "enviada em", "enviado em", "fecha", "data", "gesendet",
        "datum", "envoyé", "envoyé le", "inviato", "verzonden", "wysłano", "wysłane", "отправлено", "дата",
        "skickat", "sendt", "dato", "lähetetty", "päivämäärä", "đã gửi", "ngày",
    ),
    "to": ("to", "para", "an", "à", "a", "aan", "do", "кому", "till", "til", "vastaanottaja", "đến"),
    "subject": (
        "subject", "asunto", "assunto", "betreff", "objet", "oggetto", "onderwerp", "temat", "тема", "ämne",
        "emne", "aihe", "chủ đề",
    ),
}  # fmt: skip
LABEL_KINDS = {label: kind for kind, labels in HEADER_LABELS.items() for label in labels}

# Subject prefixes a forward starts with (the first prefix decides: "RE: FW: x" is a
# reply): en FW/Fwd, es RV, pt Enc, fr TR, de WG, it I, nl Doorst, pl PD, sv VB, fi VL.
FORWARD_PREFIXES = frozenset({"fw", "fwd", "rv", "enc", "tr", "wg", "i", "doorst", "pd", "vb", "vl", "пересл", "fs"})

# Phone signatures that some clients glue to the attribution below them
# ("Sent from my iPhoneOn Nov 20, 2026, … wrote:"), per language.
SENT_FROM = (
    "sent from my", "enviado desde mi", "enviado de mi", "enviado do meu", "envoyé de mon", "von meinem",
    "inviato da", "verzonden met", "verzonden vanaf", "wysłane z", "отправлено с", "skickat från", "sendt fra",
    "lähetetty", "gửi từ", "get outlook for",
)  # fmt: skip

# HTML quote containers: a start tag whose attributes hold one of these (lower-cased) opens
# quoted history with no `>` marks: Gmail, Outlook web, old Hotmail, Yahoo, Outlook for
# Mac, Zoho, Proton. A plain <blockquote> (Apple Mail, Thunderbird, mail.ru, Yandex) is
# read as `>` lines instead, so text below it is still seen.
HTML_CONTAINERS = ("gmail_quote", "divrplyfwdmsg", "stopspelling", "yahoo_quoted", "outlookmessageheader",
                   "zmail_extra", "protonmail_quote")  # fmt: skip
# Outlook desktop and Windows Mail: the reply header is a div with a thin grey top border.
HTML_BORDER = re.compile(r"border-top:\s*solid\s+#(?:e1e1e1|b5c4df)")


def verb_pattern() -> str:
    """One alternation of the verbs, longest first, as whole words."""
    verbs = sorted(ATTRIBUTION_VERBS, key=len, reverse=True)
    return r"(?<!\w)(?:" + "|".join(re.escape(verb) for verb in verbs) + r")(?!\w)"
