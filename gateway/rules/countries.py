"""Country names as customers write them (Spanish, English, Portuguese, or the code) → ISO 3166-1
alpha-2, so `País: Perú`, `País: Peru` and `País: PE` are one country to `--country PE`.

Pure code. The desks we serve are in the Americas and Iberia; a name not listed is kept as
written (agents still read it), never guessed.
"""

from __future__ import annotations

import unicodedata

# code: names in es / en / pt, compared without accents or case ("peru" matches "Perú").
NAMES: dict[str, tuple[str, ...]] = {
    "AR": ("argentina",),
    "BO": ("bolivia",),
    "BR": ("brasil", "brazil"),
    "CA": ("canada",),
    "CL": ("chile",),
    "CO": ("colombia", "colômbia"),
    "CR": ("costa rica",),
    "CU": ("cuba",),
    "DO": ("republica dominicana", "dominican republic", "república dominicana"),
    "EC": ("ecuador", "equador"),
    "ES": ("espana", "spain", "espanha"),
    "GT": ("guatemala",),
    "HN": ("honduras",),
    "MX": ("mexico", "méxico", "méjico", "mexique"),
    "NI": ("nicaragua", "nicarágua"),
    "PA": ("panama", "panamá"),
    "PE": ("peru", "perú"),
    "PR": ("puerto rico", "porto rico"),
    "PT": ("portugal",),
    "PY": ("paraguay", "paraguai"),
    "SV": ("el salvador", "salvador"),
    "US": ("estados unidos", "united states", "usa", "eeuu", "ee.uu.", "eua", "united states of america"),
    "UY": ("uruguay", "uruguai"),
    "VE": ("venezuela",),
}


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().split())


CODES: dict[str, str] = {
    **{code.lower(): code for code in NAMES},
    **{_plain(name): code for code, names in NAMES.items() for name in names},
}


def country_code(written: str) -> str | None:
    """The ISO 3166-1 alpha-2 code a written country means, or None when we do not know it."""
    return CODES.get(_plain(written).strip(" .,;:"))
