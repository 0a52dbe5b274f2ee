"""A small corpus for the chat UI tests: current and outdated Markdown, and a PDF whose answer sits on page 2.

A plain module (not conftest) so tests can import the writers; pytest puts tests/ui on sys.path.
"""

from __future__ import annotations

from pathlib import Path

RESERVED = """\
---
title: Reserverade kontrakt för sociala företag
valid_as_of: 2026-11-01
last_checked: 2026-11-28
---

# Reserverade kontrakt för sociala företag

## Vad lagen tillåter

Enligt 4 kap. 18 § LOU får kommunen reservera en upphandling för leverantörer vars huvudsakliga syfte är
social och yrkesmässig integration av personer med funktionsnedsättning eller personer som har svårt att
komma in på arbetsmarknaden. Minst 30 procent av de anställda hos leverantören ska tillhöra målgruppen.

## Hur kommunen gör

Kommunen anger redan i annonsen att upphandlingen är reserverad. Leverantören visar vid kvalificeringen
att minst 30 procent av de anställda tillhör målgruppen.
"""

SELLING = """\
---
title: Så säljer sociala företag till kommunen
valid_as_of: 2026-10-01
last_checked: 2026-11-20
---

# Så säljer sociala företag till kommunen

## Direktupphandling

Ett socialt företag kan sälja till kommunen genom direktupphandling när köpets värde ligger under
direktupphandlingsgränsen. Företaget bör kontakta kommunens inköpsavdelning och presentera sina tjänster.

## Bevaka annonser

Sociala företag som vill sälja till kommunen bör bevaka kommunens annonserade upphandlingar och lämna anbud
på kontrakt som passar verksamheten.
"""

# Outdated on purpose: last checked years ago, so a citation of it must carry the stale notice.
PARTNERSHIP = """\
---
title: Idéburet offentligt partnerskap
valid_as_of: 2019-06-01
last_checked: 2020-03-01
---

# Idéburet offentligt partnerskap

## Vad ett IOP är

Ett idéburet offentligt partnerskap, IOP, är en samverkansform där kommunen och en ideell förening
tillsammans driver en verksamhet för ett gemensamt mål. Partnerskapet är inte ett köp av tjänster.
"""

# fpdf2's core font is Latin-1: å, ä and ö work, en dashes do not.
NETWORK_PDF_TITLE = "Utvecklingsnätverket för sociala företag"
NETWORK_PDF_PAGES = [
    ("Inledning", "Rapporten beskriver arbetet i utvecklingsnätverket under projekttiden."),
    ("Deltagande kommuner",
     "Kommunerna Örebro, Skellefteå och Malmö var med i utvecklingsnätverket för sociala företag. "
     "Varje kommun utsåg en kontaktperson till nätverket."),
]


def write_pdf(path: Path, pages: list[tuple[str, str]], title: str) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for heading, text in pages:
        pdf.add_page()
        pdf.start_section(heading)
        pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_ui_corpus(folder: Path) -> Path:
    (folder / "regler").mkdir(parents=True, exist_ok=True)
    (folder / "vagledning").mkdir(parents=True, exist_ok=True)
    (folder / "regler" / "reserverade-kontrakt.md").write_text(RESERVED, encoding="utf-8")
    (folder / "vagledning" / "salja-till-kommunen.md").write_text(SELLING, encoding="utf-8")
    (folder / "vagledning" / "iop.md").write_text(PARTNERSHIP, encoding="utf-8")
    write_pdf(folder / "natverket.pdf", NETWORK_PDF_PAGES, NETWORK_PDF_TITLE)
    return folder
