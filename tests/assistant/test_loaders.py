"""assistant.loaders: each format → blocks with section paths (and PDF pages), front matter, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from assistant.chunking import chunk_document
from assistant.loaders import CorpusFile, LoadError, discover, document_text, load
from assistant.text import normalize_ws, table_parts


def _load(path: Path, root: Path | None = None):
    return load(CorpusFile(root or path.parent, path))


def _normalized(blocks) -> str:
    return normalize_ws(" ".join(b.text for b in blocks))


def test_pdf_blocks_carry_page_numbers_and_outline_sections(corpus):
    doc = _load(corpus.pdf)
    assert doc.title == corpus.pdf_title
    assert {b.page for b in doc.blocks} == {1, 2, 3}
    for number, (outline, text) in enumerate(corpus.pdf_pages, start=1):
        on_page = [b for b in doc.blocks if b.page == number]
        assert normalize_ws(text) == _normalized(on_page)
        assert {b.section for b in on_page} == {" > ".join(outline)}


def test_pdf_without_outline_has_empty_sections_and_file_stem_title(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in ("Första sidan om kommuner.", "Andra sidan om företag."):
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    path = tmp_path / "utan-bokmarken.pdf"
    pdf.output(str(path))
    doc = _load(path)
    assert doc.title == "utan-bokmarken"
    assert [(b.page, b.section) for b in doc.blocks] == [(1, ""), (2, "")]


def test_pdf_without_text_is_an_error_that_mentions_ocr(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50)  # a "scanned" page: drawing only, no text
    path = tmp_path / "skannad.pdf"
    pdf.output(str(path))
    with pytest.raises(LoadError, match="OCR"):
        _load(path)


def test_garbage_with_pdf_suffix_is_a_load_error(tmp_path):
    path = tmp_path / "trasig.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(LoadError) as err:
        _load(path)
    assert "PDF" in str(err.value)


def test_docx_heading_styles_give_section_paths(corpus):
    doc = _load(corpus.docx)
    assert doc.title == corpus.docx_title
    expected = []
    stack: list[tuple[int, str]] = []
    for level, text in corpus.docx_content:
        if level:
            stack = [(lv, h) for lv, h in stack if lv < level] + [(level, text)]
        else:
            expected.append((text, " > ".join(h for _, h in stack)))
    assert [(b.text, b.section) for b in doc.blocks] == expected
    assert all(b.page is None for b in doc.blocks)


def test_docx_tables_become_markdown_tables_under_their_header(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Belopp", 1)
    table = document.add_table(rows=3, cols=3)
    rows = [("Period", "Gräns", "Not"), ("2024–2025", "700 000 kronor", "LOU | LUF"),
            ("2022–2023", "700 000 kronor", "")]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    layout = document.add_table(rows=2, cols=1)  # one column: layout, its cells are paragraphs
    layout.cell(0, 0).text = "Kontakta upphandlingsenheten."
    layout.cell(1, 0).text = "Ring växeln."
    path = tmp_path / "tabell.docx"
    document.save(str(path))
    doc = _load(path)
    assert [(b.text, b.section) for b in doc.blocks] == [
        ("| Period | Gräns | Not |\n| --- | --- | --- |\n| 2024–2025 | 700 000 kronor | LOU \\| LUF |\n"
         "| 2022–2023 | 700 000 kronor |  |", "Belopp"),
        ("Kontakta upphandlingsenheten.", "Belopp"),
        ("Ring växeln.", "Belopp"),
    ]
    header, body = table_parts(doc.blocks[0].text)
    assert header[0] == "| Period | Gräns | Not |" and len(body) == 2


def test_docx_merged_cells_are_read_once(tmp_path):
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Tröskelvärden"
    table.cell(0, 2).text = "Källa"
    for c, value in enumerate(("Varor", "1 000 000", "UHM")):
        table.cell(1, c).text = value
    path = tmp_path / "sammanslagen.docx"
    document.save(str(path))
    assert _load(path).blocks[0].text.split("\n")[0] == "| Tröskelvärden | Källa |  |"


def test_html_tables_become_markdown_tables_and_chunk_under_their_header(tmp_path):
    rows = "".join(f"<tr><td>{2000 + i}</td><td>{'belopp ' * 30}{i} kronor</td></tr>" for i in range(30))
    page = (f"<html><body><h2>Belopp</h2><table><caption>Gränser per år</caption><thead><tr><th>År</th><th>Gräns"
            f"</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<table><tr><td>Bara en rad</td><td>för layout</td></tr></table>"
            f"</body></html>")
    path = tmp_path / "tabell.html"
    path.write_text(page, encoding="utf-8")
    doc = _load(path)
    caption, table, *layout = doc.blocks
    assert (caption.text, caption.section) == ("Gränser per år", "Belopp")
    header, body = table_parts(table.text)
    assert header[0] == "| År | Gräns |" and len(body) == 30
    assert [b.text for b in layout] == ["Bara en rad", "för layout"]
    chunks = chunk_document(doc, lambda t: len(t.split()), 120, 120)
    parts = [c.text for c in chunks if "kronor" in c.text]
    assert len(parts) > 1 and parts[0].startswith("Gränser per år\n\n| År | Gräns |")
    assert all(("\n\n" + p).count("\n\n| År | Gräns |\n| --- | --- |\n| 20") == 1 for p in parts)


def test_an_html_layout_table_is_read_as_the_page_it_lays_out(tmp_path):
    page = ("<html><body><table><tr><td><ul><li>Start</li><li>Kontakt</li></ul></td><td><h2>Upphandling</h2>"
            "<p>Kommunen får reservera kontrakt för arbetsintegrerande sociala företag.</p><p>Se vidare LOU.</p>"
            "<table><tr><th>År</th><th>Gräns</th></tr><tr><td>2024</td><td>700 000 kronor</td></tr></table>"
            "</td></tr></table>"
            "<table><tr><td><p>Period</p></td><td><p>Gräns</p></td></tr>"  # Word's HTML: one <p> per cell
            "<tr><td><p>2022–2023</p></td><td><p>700 000 kronor</p></td></tr></table></body></html>")
    path = tmp_path / "layout.html"
    path.write_text(page, encoding="utf-8")
    got = [(b.text, b.section) for b in _load(path).blocks]
    assert got == [
        ("Start", ""), ("Kontakt", ""),
        ("Kommunen får reservera kontrakt för arbetsintegrerande sociala företag.", "Upphandling"),
        ("Se vidare LOU.", "Upphandling"),
        ("| År | Gräns |\n| --- | --- |\n| 2024 | 700 000 kronor |", "Upphandling"),
        ("| Period | Gräns |\n| --- | --- |\n| 2022–2023 | 700 000 kronor |", "Upphandling"),
    ]


def test_an_html_data_table_with_lists_in_its_cells_stays_a_table(tmp_path):
    page = ("<html><body><table><tr><th>Kommun</th><th>Tjänster</th></tr>"
            "<tr><td>Söderhamn</td><td><ul><li>Fruktkorgar</li><li>Tvätt</li></ul></td></tr>"
            "<tr><td>Tierp</td><td><p>Städning</p><p>Catering</p></td></tr></table>"
            "<table><tr><td>Meny</td><td><ul><li>Start</li><li>Kontakt</li></ul></td></tr></table>"  # no header row
            "</body></html>")
    path = tmp_path / "lista.html"
    path.write_text(page, encoding="utf-8")
    got = [b.text for b in _load(path).blocks]
    assert got == ["| Kommun | Tjänster |\n| --- | --- |\n| Söderhamn | Fruktkorgar; Tvätt |\n"
                   "| Tierp | Städning; Catering |", "Meny", "Start", "Kontakt"]


def test_broken_docx_is_a_load_error(tmp_path):
    path = tmp_path / "trasig.docx"
    path.write_bytes(b"PK\x03\x04 inte en zip")
    with pytest.raises(LoadError, match="DOCX"):
        _load(path)


def test_html_headings_give_section_paths_and_chrome_is_dropped(corpus):
    doc = _load(corpus.html)
    assert doc.title == "Vägledning om marknadsdialog"
    got = [(b.text, b.section) for b in doc.blocks]
    assert got == [
        ("En kommun kan föra dialog med marknaden innan en upphandling annonseras, så länge alla leverantörer "
         "behandlas lika.", "Dialog före upphandling"),
        ("Bjud in till ett öppet informationsmöte.", "Dialog före upphandling > Tips"),
        ("Publicera frågor och svar för alla.", "Dialog före upphandling > Tips"),
        ("Efter tilldelningsbeslutet ska kommunen meddela alla anbudsgivare vilket anbud som antogs.",
         "Efter tilldelning"),
    ]
    everything = " ".join(b.text for b in doc.blocks)
    for chrome in ("tracking", "Meny", "Sidfot"):
        assert chrome not in everything


def test_markdown_front_matter_becomes_metadata_and_headings_a_path(corpus):
    doc = _load(corpus.markdown)
    assert doc.title == "Direktupphandling för kommuner"  # front matter wins over the H1
    assert doc.metadata == {
        "title": "Direktupphandling för kommuner",
        "type": "regelverk",
        "audience": ["kommun", "företag"],
        "valid_as_of": "2026-11-01",  # a YAML date, stored as an ISO string
        "last_checked": "2026-11-28",
    }
    sections = [b.section for b in doc.blocks]
    assert sections == ["", "Gränsen för direktupphandling", "Gränsen för direktupphandling > Dokumentation"]
    assert doc.blocks[1].text.startswith("Direktupphandlingsgränsen i LOU är 700 000 kronor")
    assert all("---" not in b.text and "valid_as_of" not in b.text for b in doc.blocks)


def test_markdown_h1_is_title_without_front_matter_and_fences_hide_headings(tmp_path):
    path = tmp_path / "kod.md"
    path.write_text(
        "# Titeln\n\n## Avsnitt\n\nText före.\n\n```\n# ingen rubrik\n```\n\n### Under\n\nText efter.\n",
        encoding="utf-8",
    )
    doc = _load(path)
    assert doc.title == "Titeln"
    assert doc.metadata == {}
    assert [b.section for b in doc.blocks] == ["Avsnitt", "Avsnitt", "Avsnitt > Under"]
    assert "# ingen rubrik" in doc.blocks[1].text


def test_bad_front_matter_is_a_load_error(tmp_path):
    path = tmp_path / "fel.md"
    path.write_text("---\ntitle: [inte stängd\n---\n\nText.\n", encoding="utf-8")
    with pytest.raises(LoadError, match="YAML"):
        _load(path)


def test_plain_text_paragraphs_without_sections(corpus):
    doc = _load(corpus.text, corpus.dir)
    assert doc.source == "anteckningar/arbetsintegrering.txt"
    assert doc.title == "arbetsintegrering"
    assert [b.section for b in doc.blocks] == ["", ""]
    assert doc.blocks[1].text.startswith("Vinsten i ett arbetsintegrerande")
    assert doc.sha256 == hashlib.sha256(corpus.text.read_bytes()).hexdigest()


def test_cp1252_text_is_decoded(tmp_path):
    path = tmp_path / "gammal.txt"
    path.write_bytes("Kommunen köper tjänster av föreningen.".encode("cp1252"))
    assert _load(path).blocks[0].text == "Kommunen köper tjänster av föreningen."


@pytest.mark.parametrize("content", [b"", b"  \n\n\t  \n"])
def test_empty_file_is_a_load_error_tom_fil(tmp_path, content):
    path = tmp_path / "tom.md"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=r"^tom fil$"):
        _load(path)


def test_discover_keeps_supported_files_and_skips_hidden_readme_and_others(tmp_path):
    root = tmp_path / "korpus"
    for rel in ["b.md", "a.txt", "sub/c.pdf", "sub/d.DOCX", "e.htm", "README.md", ".dold.md", ".git/x.md",
                "bild.png", "data.json"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    found = [f.source for f in discover(root)]
    assert found == ["a.txt", "b.md", "e.htm", "sub/c.pdf", "sub/d.DOCX"]


def test_document_text_is_the_raw_file_for_markdown_and_one_page_for_pdf(corpus):
    assert document_text(CorpusFile(corpus.dir, corpus.markdown)) == corpus.markdown.read_text(encoding="utf-8")
    page2 = document_text(CorpusFile(corpus.dir, corpus.pdf), page=2)
    assert normalize_ws(page2) == normalize_ws(corpus.pdf_pages[1][1])
    assert normalize_ws(corpus.pdf_pages[0][1]) not in normalize_ws(page2)


def test_outline_sections_follow_the_page_they_start_on(tmp_path, write_pdf_file):
    # two pages under one chapter: the second page has no bookmark of its own and keeps the chapter
    path = write_pdf_file(tmp_path / "kapitel.pdf", [(("Kapitel 1",), "Sida ett."), ((), "Sida två."),
                                                (("Kapitel 2",), "Sida tre.")])
    doc = _load(path)
    assert [(b.page, b.section) for b in doc.blocks] == [(1, "Kapitel 1"), (2, "Kapitel 1"), (3, "Kapitel 2")]


def test_pdf_running_headers_and_hyphenation_are_cleaned(tmp_path: Path, write_pdf_file):
    topics = ["kommunens styrning", "reserverade kontrakt", "idéburna partnerskap", "uppföljningen"]
    pages = [
        ((f"Kapitel {i}",), f"Ny väg till samverkan\nDen här sidan handlar om {topic}.\n"
         f"Här står mer om {topic} och om offentlig upp-\nhandling i allmänhet.\nSida {i} av 4")
        for i, topic in enumerate(topics, start=1)
    ]
    path = write_pdf_file(tmp_path / "c" / "handbok.pdf", pages, "Handbok")
    doc = load(CorpusFile(tmp_path / "c", path))
    text = "\n".join(b.text for b in doc.blocks)
    assert "Ny väg till samverkan" not in text  # the running header recurs on every page
    assert "Sida" not in text  # so does the footer, page number aside
    assert "offentlig upphandling" in text  # the line-end hyphen is joined
    assert [b.page for b in doc.blocks] == [1, 2, 3, 4]
    assert "idéburna partnerskap" in next(b.text for b in doc.blocks if b.page == 3)


# --- Markdown structure on markdown-it tokens ------------------------------------------------------


def test_markdown_setext_headings_give_title_and_sections(tmp_path):
    path = tmp_path / "setext.md"
    path.write_text("Samverkan i kommunen\n====================\n\nInledande text.\n\n"
                    "Avtal\n-----\n\nKommunen tecknar avtal.\n\n### Uppföljning\n\nAvtalet följs upp.\n",
                    encoding="utf-8")
    doc = _load(path)
    assert doc.title == "Samverkan i kommunen"
    assert [(b.text, b.section) for b in doc.blocks] == [
        ("Inledande text.", ""),
        ("Kommunen tecknar avtal.", "Avtal"),
        ("Avtalet följs upp.", "Avtal > Uppföljning"),
    ]


def test_markdown_tilde_fences_are_one_block_and_hide_headings(tmp_path):
    path = tmp_path / "tilde.md"
    path.write_text("# Titeln\n\n## Exempel\n\nSå här ser filen ut.\n\n"
                    "~~~yaml\n# ingen rubrik\n\nnyckel: värde\n~~~\n\n## Nästa\n\nText efter.\n", encoding="utf-8")
    doc = _load(path)
    assert doc.title == "Titeln"
    assert [(b.text, b.section) for b in doc.blocks] == [
        ("Så här ser filen ut.", "Exempel"),
        ("~~~yaml\n# ingen rubrik\n\nnyckel: värde\n~~~", "Exempel"),  # the blank line does not split it
        ("Text efter.", "Nästa"),
    ]


def test_markdown_table_rows_stay_one_block_apart_from_the_lead_line(tmp_path):
    path = tmp_path / "tabell.md"
    table = ("| Period | Gräns | Källa |\n|---|---|---|\n| 2024–2025 | 700 000 kronor | S54 |\n"
             "| 2026–2027 | 800 000 kronor | S52, S56 |")
    path.write_text("---\nsources: [\"S52 – upphandlingsmyndigheten.se/troskelvarden\", "
                    "\"S54 – Konkurrensverket, nya upphandlingsregler\", \"S56 – SKR, tröskelvärden\"]\n---\n\n"
                    f"## Belopp\n\nTabellen visar gränserna:\n{table}\n\nText efter tabellen.\n", encoding="utf-8")
    doc = _load(path)
    resolved = table.replace("| S54 |", "| Konkurrensverket, nya upphandlingsregler |").replace(
        "| S52, S56 |", "| upphandlingsmyndigheten.se/troskelvarden; SKR, tröskelvärden |")
    assert [(b.text, b.section) for b in doc.blocks] == [
        ("Tabellen visar gränserna:", "Belopp"),  # a table may follow a line without a blank line
        (resolved, "Belopp"),  # the rows together, as the chunker expects (one unit per row)
        ("Text efter tabellen.", "Belopp"),
    ]


def test_markdown_empty_front_matter_and_setext_after_front_matter(tmp_path):
    empty = tmp_path / "tom-front-matter.md"
    empty.write_text("---\n---\n\n# Titel\n\nText.\n", encoding="utf-8")
    doc = _load(empty)
    assert (doc.title, doc.metadata, [b.text for b in doc.blocks]) == ("Titel", {}, ["Text."])
    closed = tmp_path / "front-matter.md"
    closed.write_text("---\ntitle: Från front matter\nsources:\n  - S1 – skr.se\n---\nAvsnitt\n-------\nText.\n",
                      encoding="utf-8")
    doc = _load(closed)  # the closing --- is front matter, not the underline of a heading
    assert doc.title == "Från front matter"
    assert doc.metadata == {"title": "Från front matter", "sources": ["S1 – skr.se"]}
    assert [(b.text, b.section) for b in doc.blocks] == [("Text.", "Avsnitt")]


# --- source keys spelled out ---------------------------------------------------------------------

KEYED = """\
---
title: Reserverade kontrakt
sources: ["S45 – upphandlingsmyndigheten.se/hallbarhet/reserverad-upphandling/", "S47 – HFD 2021:48",
  "S57–S58 – EU:s delegerade förordning 2025/2152", "S9 – esf.se/projektbanken"]
---

# Reserverade kontrakt

En kommun får reservera rätten att delta i en upphandling (källa: S45). Hela leverantören måste \
uppfylla kraven (källa: S45, S47). Tröskelvärdena gäller från 2026 (källa: S57–S58). Projektet pågick \
till 2023 (källa: S9). Budgeten anges i projektbeskrivningen (källa: projektbeskrivningen).

## Källor

- S45 – Upphandlingsmyndigheten, reserverad upphandling
- S47 – Högsta förvaltningsdomstolen, HFD 2021:48 (2021-10-20)
"""


def test_source_keys_become_the_names_of_the_sources(tmp_path):
    path = tmp_path / "c" / "reserverat.md"
    path.parent.mkdir()
    path.write_text(KEYED, encoding="utf-8")
    file = CorpusFile(path.parent, path)
    doc = load(file)
    text = doc.blocks[0].text
    assert "upphandling (källa: Upphandlingsmyndigheten, reserverad upphandling)." in text
    # several keys: each name once, the Källor list's name before the front matter's address
    assert ("kraven (källa: Upphandlingsmyndigheten, reserverad upphandling; Högsta förvaltningsdomstolen, "
            "HFD 2021:48 (2021-10-20)).") in text
    assert "från 2026 (källa: EU:s delegerade förordning 2025/2152)." in text  # a range listed as one entry
    assert "till 2023 (källa: esf.se/projektbanken)." in text  # only in the front matter: its address
    assert "(källa: projektbeskrivningen)" in text  # not a key: as written
    assert "S45" not in text and "S9)" not in text
    # the addresses stay in the metadata; the Källor section stays out of the index
    assert doc.metadata["sources"][0] == "S45 – upphandlingsmyndigheten.se/hallbarhet/reserverad-upphandling/"
    assert [b.section for b in doc.blocks] == [""]
    # the quote check and the document view read the same resolved text, so quotes stay verbatim
    assert normalize_ws(text) in normalize_ws(document_text(file))
    assert "- S45 – Upphandlingsmyndigheten, reserverad upphandling" in document_text(file)


def test_an_unknown_source_key_stays_and_is_logged(tmp_path, caplog):
    path = tmp_path / "okand.md"
    path.write_text(KEYED.replace("(källa: S9)", "(källa: S99)").replace("(källa: S45, S47)", "(källa: S45, S98)"),
                    encoding="utf-8")
    with caplog.at_level("WARNING", logger="assistant.loaders"):
        doc = _load(path)
    text = doc.blocks[0].text
    assert "till 2023 (källa: S99)." in text
    assert "kraven (källa: Upphandlingsmyndigheten, reserverad upphandling; S98)." in text
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "okand.md" in warnings[0] and "S98, S99" in warnings[0]


# --- PDF line-end hyphens ------------------------------------------------------------------------


def test_pdf_keeps_swedish_suspended_hyphens(tmp_path, write_pdf_file):
    path = write_pdf_file(tmp_path / "namnder.pdf", [((), (
        "Ärendet bereds av social-\noch arbetsmarknadsnämnden, som ansvarar för hälso-\noch sjukvård.\n"
        "Utredningen väger för-\neller nackdelar med bygg-\nsamt anläggningsentreprenader."))])
    text = normalize_ws(_load(path).blocks[0].text)
    assert "av social- och arbetsmarknadsnämnden, som" in text
    assert "för hälso- och sjukvård." in text
    assert "väger för- eller nackdelar med bygg- samt anläggningsentreprenader." in text


def test_pdf_joins_a_word_broken_at_the_line_end(tmp_path, write_pdf_file):
    path = write_pdf_file(tmp_path / "arbete.pdf", [((), (
        "Kommunen vill stärka arbets-\nmarknaden och köper till-\nfälliga platser som-\nmartid."))])
    text = normalize_ws(_load(path).blocks[0].text)
    assert "stärka arbetsmarknaden och köper tillfälliga platser sommartid." in text
