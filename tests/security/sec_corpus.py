"""The corpus the security tests serve: ordinary documents, one whose text carries Markdown that would
make a browser fetch from (or link to) a trap address, and one with a file name full of URL syntax.

A plain module (not conftest) so tests can import the texts; pytest puts tests/security on sys.path.
"""

from __future__ import annotations

from pathlib import Path

RESERVED = """\
---
title: Reserverade kontrakt för sociala företag
---

# Reserverade kontrakt för sociala företag

## Vad lagen tillåter

Enligt 4 kap. 18 § LOU får kommunen reservera en upphandling för leverantörer vars huvudsakliga syfte är
social och yrkesmässig integration av personer med funktionsnedsättning eller personer som har svårt att
komma in på arbetsmarknaden. Minst 30 procent av de anställda hos leverantören ska tillhöra målgruppen.
"""

# Corpus text an attacker (or a careless copy from the web) controls: an image, a link and a bare URL.
TRAP_TEMPLATE = """\
---
title: Kaffe till kommunens möten ![rubrik](http://127.0.0.1:{port}/rubrik.png)
---

# Kaffe till kommunens möten

## Inköp av kaffe

Kommunens kaffe till mötesrummen köps in från ett rosteri i Dalarna
![bild](http://127.0.0.1:{port}/bild.png) enligt ramavtalet för livsmedel. Mer om rosteriet i Dalarna
finns på [rosteriets sida](http://127.0.0.1:{port}/lank) och på http://127.0.0.1:{port}/naken för den som
vill läsa.
"""
TRAP_QUESTION = "Var köper kommunen kaffe till mötesrummen?"

# Spaces, å/ä/ö, '#', '%' and '?': every one of them is URL syntax or needs encoding.
ODD_NAME = "Öppettider för #2 fritidsgården (100% klart?).md"
ODD = """\
---
title: Fritidsgården i Ödeshög
---

# Fritidsgården i Ödeshög

## Öppettider

Fritidsgården i Ödeshög har öppet för ungdomar på lördagar mellan klockan tolv och sexton.
"""
ODD_QUESTION = "När har fritidsgården i Ödeshög öppet för ungdomar?"

# A newline in a file name: the link must work, or the file is skipped cleanly (never a dead link).
NEWLINE_NAME = "Rad\nbrytning.md"
NEWLINE = """\
---
title: Snöröjning vid kommunens förskolor
---

# Snöröjning vid kommunens förskolor

## Ansvar

Snöröjningen vid kommunens förskolor sköts av fastighetsavdelningen före klockan sju på vardagar.
"""
NEWLINE_QUESTION = "Vem sköter snöröjningen vid kommunens förskolor?"


def write_security_corpus(folder: Path, trap_port: int = 9) -> Path:
    """The corpus; ``trap_port`` is where the trap document's image and links point (9: discard)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reserverade-kontrakt.md").write_text(RESERVED, encoding="utf-8")
    (folder / "kaffe.md").write_text(TRAP_TEMPLATE.format(port=trap_port), encoding="utf-8")
    (folder / ODD_NAME).write_text(ODD, encoding="utf-8")
    (folder / NEWLINE_NAME).write_text(NEWLINE, encoding="utf-8")
    return folder
