"""The typed records the core hands to the UI, the API and the CLI: locations, keys, dates."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from assistant.types import (
    Answer,
    Chunk,
    Citation,
    Document,
    Hit,
    NearestPassage,
    Passage,
    SourceDocument,
    dates,
    document_key,
    location,
)


def _chunk(source: str = "regler/lou.pdf", section: str = "Kapitel > Avsnitt", page: int | None = 4,
           **meta) -> Chunk:
    return Chunk(id="c1", text="Passagen.", source=source, corpus_dir="/korpus", title="LOU", section=section,
                 page=page, position=0, metadata=meta)


def test_location_is_one_format_for_every_listing():
    assert location("LOU", "Kapitel > Avsnitt", 4, "lou.pdf") == "LOU – Kapitel > Avsnitt, s. 4 (lou.pdf)"
    assert location("LOU", "", None, "lou.md") == "LOU (lou.md)"  # no dangling dash without a section
    assert location("", "Avsnitt", None) == "Avsnitt"
    assert location("LOU", "Avsnitt", 0, None) == "LOU – Avsnitt"  # 0 is no page
    citation = Citation(2, "lou.pdf", "LOU", "Avsnitt", 3, "Citat.")
    assert citation.location() == "LOU – Avsnitt, s. 3 (lou.pdf)"
    assert citation.location(with_source=False) == "LOU – Avsnitt, s. 3"
    assert _chunk().location() == "LOU – Kapitel > Avsnitt, s. 4 (regler/lou.pdf)"


def test_document_key_is_shared_by_the_manifest_and_loaded_documents(tmp_path: Path):
    doc = SourceDocument(tmp_path, "a/b.md", "B", "0" * 64, [])
    assert doc.key == document_key(tmp_path.resolve(), "a/b.md") == f"{tmp_path.resolve()}::a/b.md"
    record = Document.from_manifest({"corpus_dir": str(tmp_path.resolve()), "source": "a/b.md", "title": "B"})
    assert record.key == doc.key  # the indexer's manifest key and the record's key agree


def test_document_from_a_manifest_entry():
    entry = {"corpus_dir": "/korpus", "source": "iop.md", "title": "IOP", "sha256": "x",
             "metadata": {"valid_as_of": "2026-11-01", "last_checked": "2026-11-28", "valid_until": "",
                          "type": "vägledning"},
             "chunk_ids": ["a", "b", "c"]}
    doc = Document.from_manifest(entry)
    assert (doc.source, doc.title, doc.chunks) == ("iop.md", "IOP", 3)
    assert (doc.valid_as_of, doc.last_checked, doc.valid_until) == ("2026-11-01", "2026-11-28", None)
    counted = {k: v for k, v in entry.items() if k != "chunk_ids"} | {"chunks": 3}  # the current manifest
    assert Document.from_manifest(counted) == doc
    bare = Document.from_manifest({"corpus_dir": "/k", "source": "x.pdf", "title": "X", "chunk_ids": []})
    assert (bare.valid_as_of, bare.last_checked, bare.valid_until, bare.chunks) == (None, None, None, 0)


def test_dates_read_only_the_date_fields():
    assert dates({"valid_until": "2027-06-30", "title": "T", "last_checked": None}) == {
        "valid_as_of": None, "last_checked": None, "valid_until": "2027-06-30"}
    assert dates(None) == {"valid_as_of": None, "last_checked": None, "valid_until": None}


def test_nearest_passages_carry_their_documents_dates():
    hits = [Hit(_chunk(valid_until="2025-12-31", last_checked="2025-01-01"), 0.4, rank=1),
            Hit(_chunk("b.md", "", None), 0.3, rank=2)]
    refusal = Answer("Fråga?", "Nej.", True, [], "extractive", nearest=hits)
    first, second = refusal.nearest_passages()
    assert first == NearestPassage(1, "regler/lou.pdf", "LOU", "Kapitel > Avsnitt", 4, "Passagen.",
                                   corpus_dir="/korpus", last_checked="2025-01-01", valid_until="2025-12-31")
    assert second.n == 2 and second.location() == "LOU (b.md)"
    # an answer that was given offers nothing instead, even if hits were kept
    assert Answer("Fråga?", "Ja. [1]", False, [], "extractive", nearest=hits).nearest_passages() == []


def test_a_citation_and_a_nearest_passage_take_the_same_fields_from_a_hit():
    hit = Hit(_chunk(valid_as_of="2025-01-01", valid_until="2025-12-31"), 0.4, rank=1)
    cited, offered = Citation.from_hit(2, hit, "Passagen."), NearestPassage.from_hit(2, hit)
    shared = [f.name for f in fields(Passage)]
    assert {f: getattr(cited, f) for f in shared} == {f: getattr(offered, f) for f in shared} == {
        "n": 2, "source": "regler/lou.pdf", "title": "LOU", "section": "Kapitel > Avsnitt", "page": 4,
        "corpus_dir": "/korpus", "valid_as_of": "2025-01-01", "last_checked": None, "valid_until": "2025-12-31"}
    assert cited.context == offered.text == "Passagen." and cited.location() == offered.location()
    # the JSON of the API and `--json`, field by field and in this order
    assert list(cited.to_json().items()) == [("n", 2), ("source", "regler/lou.pdf"), ("title", "LOU"),
                                             ("section", "Kapitel > Avsnitt"), ("page", 4), ("quote", "Passagen.")]
    with pytest.raises(TypeError):  # a folder passed where the quote ends is never taken for the context
        Citation(1, "a.md", "A", "", None, "Citat.", "/korpus")


def test_embedding_text_has_title_and_section_but_no_source_notes():
    chunk = Chunk(id="x", text="Minst 30 procent ska tillhöra målgruppen (källa: Upphandlingsmyndigheten, "
                  "reserverad upphandling).", source="a.md", corpus_dir="/c", title="Reserverade kontrakt",
                  section="Kravet", page=None, position=0)
    # the note names a source, not content: left in, it pulls in every passage citing the same source
    assert chunk.embedding_text() == "Reserverade kontrakt > Kravet\nMinst 30 procent ska tillhöra målgruppen."
