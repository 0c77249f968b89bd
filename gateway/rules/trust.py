"""Is a mail from an agent really from that agent? Commands are honoured only if so.

Accepted proofs, in order:
1. the mail was sent to the signed reply address of this ticket that went to that agent
   (an agent who hits Reply has it);
2. a DKIM signature we verified ourselves (only with `[security] verify_dkim`) whose d=
   EQUALS one of the agents' domains and that signs the From header;
3. one Authentication-Results header (RFC 8601) we may believe, showing dkim=pass with
   header.d, spf=pass with smtp.mailfrom or dmarc=pass with header.from in an agents' domain.

Which Authentication-Results header may be believed: anyone can write one, with any
authserv-id (RFC 8601 §7.1, "Forged Header Fields"); only our own border MX removes
forged copies claiming its id and prepends its own (§5). So one is believed only when
- the mail came straight from a configured trusted relay (`[security] trusted_relays`,
  by SMTP peer address): mail from anyone else may carry any header at any position;
- it stands above every Received header our relay did not write (one whose `by` names a
  host other than a trusted authserv-id): everything below such a header was written
  before our relay received the mail, i.e. by the sender (§5: headers "added by" the
  border). The relay's own Received headers may stand above it: Postfix hides its own
  from milters, so the A-R an OpenDKIM/OpenDMARC milter inserts at the top lands below
  it. The relay must remove incoming A-R headers claiming its id (§5), e.g. Postfix
  `header_checks`, which milter-added headers do not pass through;
- it is the topmost one carrying one of `[security] trusted_authserv_ids`.
Nothing is trusted by default: both settings must be configured. A From header alone
proves nothing.

Domains are compared whole and case-insensitively: the domain of an address-like value
(smtp.mailfrom, header.from) is what follows its LAST "@", so
`smtp.mailfrom=estela.example@evil.example` is evil.example; a parent domain never
counts for a child (`header.d=example` is not estela.example). header.i alone proves
nothing: DKIM lets a signer name any subdomain of its d= there (RFC 6376 §3.5).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Protocol

import dkim
import dkim.dnsplug

from gateway.rules.signed_addresses import Signer

log = logging.getLogger(__name__)

# dkimpy's DNS look-up: a TXT record name and a timeout in, its text out (None: none).
DnsLookup = Callable[..., "bytes | None"]
MAX_SIGNATURES = 5  # a hostile mail could carry hundreds; each one costs a DNS look-up
Headers = Sequence[tuple[str, str]]  # (lower-cased name, value), in the mail's order

# The property that names the authenticated domain, per method (RFC 8601 §2.7, RFC 7489 §11.2).
PROOF_PROPERTY = {"dkim": "header.d", "spf": "smtp.mailfrom", "dmarc": "header.from"}
METHOD = re.compile(r"\s*([A-Za-z0-9][\w-]*)\s*(?:/\s*\d+\s*)?=\s*([A-Za-z0-9][\w-]*)")
PROPERTY = re.compile(r"\s*([A-Za-z0-9][\w.-]*)\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^\s\"]+)")
DKIM_D_TAG = re.compile(r"(?:^|;)\s*d\s*=\s*([^;]*)")
RECEIVED_BY = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)  # RFC 5321 §4.4 "by" clause


# What these rules read of the configuration ([agents] and [security]): described here, so
# the rules do not depend on the settings module (settings.AgentSettings and
# settings.SecuritySettings fit them).
class AgentSettings(Protocol):
    @property
    def notify_address(self) -> str: ...
    @property
    def domains(self) -> list[str]: ...


class SecuritySettings(Protocol):
    @property
    def trusted_authserv_ids(self) -> tuple[str, ...]: ...
    @property
    def trusted_relays(self) -> tuple[IPv4Network | IPv6Network, ...]: ...


def agent_proof(
    headers: Headers,
    peer: str,
    rcpt_tos: Iterable[str],
    ticket_number: str,
    author: str,
    agents: AgentSettings,
    security: SecuritySettings,
    signer: Signer,
    dkim_domains: frozenset[str] = frozenset(),
) -> str | None:
    """How the agent proved who they are, or None when they did not. Pure."""
    if signed_address_proves(rcpt_tos, ticket_number, author, agents.notify_address, signer):
        return "signed reply address"
    domains = agent_domains(agents, author)
    if dkim_domains & domains:
        return "DKIM signature of the agent's domain"
    results = trusted_results(headers, peer, security)
    proof = results_prove(results, domains) if results is not None else None
    return f"{proof}=pass from a trusted host" if proof else None


def signed_address_proves(
    rcpt_tos: Iterable[str], ticket_number: str, author: str, team_address: str, signer: Signer
) -> bool:
    bound_to = [address for address in (author, team_address) if address]
    return any(
        signer.reply_address_verifies(recipient, ticket_number, bound) for recipient in rcpt_tos for bound in bound_to
    )


def agent_domains(agents: AgentSettings, author: str) -> frozenset[str]:
    """The domains that may vouch for `author`: [agents] domains and the author's own."""
    return frozenset({*agents.domains, domain_of(author)} - {""})


def domain_of(value: str) -> str:
    """The domain of an address-like value: after its last "@", or the whole value."""
    return value.rpartition("@")[2].strip().lower()


def trusted_results(headers: Headers, peer: str, security: SecuritySettings) -> str | None:
    """The one Authentication-Results value that may be believed, or None (see the module
    docstring: a trusted relay, above the first Received, the topmost with a trusted id)."""
    wanted = {host.lower() for host in security.trusted_authserv_ids}
    if not wanted or not from_trusted_relay(peer, security.trusted_relays):
        return None
    for name, value in headers:
        if name == "received" and _received_by(value) not in wanted:
            return None
        if name == "authentication-results" and _authserv_id(value) in wanted:
            return value
    return None


def _received_by(value: str) -> str:
    """The host a Received header says took the mail ("… by mx.example.com with …")."""
    found = RECEIVED_BY.search(value)
    return found[1].lower().rstrip(".") if found else ""


def from_trusted_relay(peer: str, relays: Iterable[IPv4Network | IPv6Network]) -> bool:
    """Whether the spool's peer ("ip:port"; IPv6 as "::1:port") is one of `relays`."""
    host = peer.rpartition(":")[0].strip("[]") if ":" in peer else peer
    try:
        address = ip_address(host)
    except ValueError:  # "stdin" (ingest), "" or garbage: not a relay of ours
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    return any(address in network for network in relays)


def results_prove(value: str, domains: frozenset[str]) -> str | None:
    """The method of a `pass` result in one Authentication-Results value whose domain is
    one of `domains`, or None. A result that cannot be parsed strictly proves nothing."""
    for resinfo in _split(value)[1:]:
        method = METHOD.match(resinfo)
        if method is None or method[2].lower() != "pass" or method[1].lower() not in PROOF_PROPERTY:
            continue
        properties = _properties(resinfo[method.end() :])
        wanted = properties.get(PROOF_PROPERTY[method[1].lower()], [])
        if wanted and all(_property_domain(name, text) in domains for name, text in wanted):
            return method[1].lower()
    return None


def _properties(text: str) -> dict[str, list[tuple[str, str]]]:
    """`ptype.property=value` pairs (and reason=…, skipped) of one resinfo, by name."""
    found: dict[str, list[tuple[str, str]]] = {}
    position = 0
    while text[position:].strip():
        match = PROPERTY.match(text, position)
        if match is None:
            return {}  # not RFC 8601 grammar: believe none of it
        name, value = match[1].lower(), match[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.setdefault(name, []).append((name, value))
        position = match.end()
    return found


def _property_domain(name: str, value: str) -> str:
    if name == "header.d":  # a domain name, never an address
        return "" if "@" in value else value.strip().lower()
    return domain_of(value)


def _authserv_id(value: str) -> str:
    words = _split(value)[0].split()
    return words[0].strip('"').lower() if words else ""


def _split(value: str) -> list[str]:
    """The value cut at each ";" outside quoted strings, comments removed (RFC 5322 CFWS)."""
    parts, current, depth, quoted, escaped = [], [], 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                current.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                current.append(char)
        elif quoted:
            quoted = char != '"'
            current.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                current.append(" ")
        elif depth:
            continue
        elif char == ";":
            parts.append("".join(current))
            current = []
        else:
            quoted = char == '"'
            current.append(char)
    parts.append("".join(current))
    return parts


def dkim_claims(headers: Headers, domains: frozenset[str]) -> frozenset[str]:
    """The d= of the mail's DKIM-Signature headers that are one of `domains` (no DNS):
    a signature by any other domain proves nothing, so it is never looked up."""
    claimed = (_d_tag(value) for name, value in headers if name == "dkim-signature")
    return frozenset(domain for domain in claimed if domain in domains)


def _d_tag(value: str) -> str:
    match = DKIM_D_TAG.search(value)
    return re.sub(r"\s+", "", match[1]).lower() if match else ""


def verified_dkim_domains(
    raw: bytes, wanted: frozenset[str], dns: DnsLookup | None = None, timeout: float = 5.0
) -> frozenset[str]:
    """Those of `wanted` whose DKIM signature on `raw` verifies and signs the whole body and
    the From header (RFC 6376 §5.4). Blocking: it asks DNS, each look-up within `timeout`."""
    try:
        verifier = dkim.DKIM(raw, timeout=timeout)
    except dkim.DKIMException as error:
        log.info("DKIM: cannot read the mail: %s", error)
        return frozenset()
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    ours = [index for index, value in enumerate(signatures) if _d_tag(value.decode("latin-1")) in wanted]
    domains = set()
    for index in ours[:MAX_SIGNATURES]:
        try:
            verified = verifier.verify(idx=index, dnsfunc=dns or dkim.dnsplug.get_txt)
        except Exception as error:  # dkimpy raises many kinds on malformed signatures or DNS
            log.info("DKIM signature %d does not verify: %s", index, error)
            continue
        domain = verifier.domain.decode("latin-1").lower() if verified and verifier.domain else ""
        whole = b"from" in verifier.include_headers and b"l" not in verifier.signature_fields
        if domain in wanted and whole:
            domains.add(domain)
    return frozenset(domains)
