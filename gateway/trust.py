"""Is a mail from an agent really from that agent? Commands are honoured only if so.

Accepted proofs, in order: the mail was sent to the signed reply address of this ticket
that went to that agent (an agent who hits Reply has it); a DKIM signature that verifies
for the agent's domain (dkimpy; the key comes from DNS); or an Authentication-Results
header written by one of our own trusted hosts shows dkim=pass or spf=pass for the From
domain. A From header alone proves nothing: anyone can write one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import dkim

from gateway.parse import ParsedMail
from gateway.tokens import Signer

log = logging.getLogger(__name__)

# dkimpy's DNS look-up: a TXT record name in, its text out (None when there is none).
DnsLookup = Callable[..., "bytes | None"]
MAX_SIGNATURES = 5  # a hostile mail could carry hundreds; each one costs a DNS look-up

# "mx.estela.example; dkim=pass header.d=estela.example; spf=pass smtp.mailfrom=…"
RESULT = re.compile(r"\b(dkim|spf)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
DOMAIN_PROPERTY = re.compile(r"(header\.d|header\.i|smtp\.mailfrom|header\.from)\s*=\s*\S*?@?([\w.-]+)", re.IGNORECASE)


def agent_proof(
    mail: ParsedMail,
    rcpt_tos: tuple[str, ...],
    ticket_number: str,
    author: str,
    team_address: str,
    signer: Signer,
    trusted_authserv_ids: tuple[str, ...],
    dkim_domains: frozenset[str] = frozenset(),
) -> str | None:
    """How the agent proved who they are, or None when they did not."""
    bound_to = [address for address in (author, team_address) if address]
    for recipient in rcpt_tos:
        if any(signer.reply_address_verifies(recipient, ticket_number, bound) for bound in bound_to):
            return "signed reply address"
    domain = author.rpartition("@")[2].lower()
    if any(_same_or_parent(signed, domain) for signed in dkim_domains):
        return "DKIM signature of the agent's domain"
    for value in _trusted_results(mail, trusted_authserv_ids):
        for method, verdict, properties in RESULT.findall(value):
            if verdict.lower() == "pass" and _aligned(properties, domain):
                return f"{method.lower()}=pass from a trusted host"
    return None


def _trusted_results(mail: ParsedMail, trusted: tuple[str, ...]) -> list[str]:
    """Authentication-Results values whose authserv-id is one of our hosts (RFC 8601 §5)."""
    wanted = {host.lower() for host in trusted}
    values = (value for key, value in mail.headers if key == "authentication-results")
    return [value for value in values if _authserv_id(value) in wanted]


def _authserv_id(value: str) -> str:
    words = value.split(";", 1)[0].split()
    return words[0].lower() if words else ""


def _aligned(properties: str, domain: str) -> bool:
    return any(_same_or_parent(match[1].lower(), domain) for match in DOMAIN_PROPERTY.findall(properties))


def _same_or_parent(signed: str, domain: str) -> bool:
    """Relaxed alignment (DMARC): the signing domain is the From domain or a parent of it."""
    return domain == signed or domain.endswith("." + signed)


def verified_dkim_domains(raw: bytes, dns: DnsLookup | None = None) -> frozenset[str]:
    """The d= domains of the DKIM signatures on `raw` that verify. Blocking: it asks DNS."""
    verifier = dkim.DKIM(raw)
    domains = set()
    for index in range(min(MAX_SIGNATURES, _signature_count(raw))):
        try:
            verified = verifier.verify(idx=index, dnsfunc=dns) if dns else verifier.verify(idx=index)
        except Exception as error:  # dkimpy raises many kinds on malformed signatures or DNS
            log.info("DKIM signature %d does not verify: %s", index, error)
            continue
        if verified and verifier.domain:
            domains.add(verifier.domain.decode().lower())
    return frozenset(domains)


def _signature_count(raw: bytes) -> int:
    header = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return len(re.findall(rb"(?im)^dkim-signature:", header))
