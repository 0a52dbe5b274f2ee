"""Extractive answers through Assistant.ask on a real index and the shipped relevance model: cited,
verbatim quotes; refusal with nearest passages when the corpus does not answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.answer import REFUSAL, REFUSAL_HINT, compose, display_sentence, refusal_text
from assistant.cite import verify
from assistant.policy import Candidate
from assistant.text import normalize_ws, split_sentences
from assistant.types import Chunk, Citation, Hit

ANSWERABLE = [
    ("Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?", "handbok.pdf"),
    ("Vem samordnar de regionala nätverken för sociala företag?", "riktlinjer.docx"),
    ("Får kommunen föra dialog med marknaden före en upphandling?", "marknadsdialog.html"),
    ("När måste kommunen dokumentera skälen till en direktupphandling?", "direktupphandling.md"),
    ("Vad händer med vinsten i ett arbetsintegrerande socialt företag?", "anteckningar/arbetsintegrering.txt"),
]

UNRELATED = [
    "Hur bakar man surdegsbröd?",
    "Vem vann fotbolls-VM 1958?",
    "Vilken färg har en giraff?",
    "What is the capital of Mongolia?",
]


def independent_text(path: Path, page: int | None) -> str:
    """The file's text read without assistant.loaders: what a person opening the file would see."""
    suffix = path.suffix.lower()
    if suffix in {".md", ".txt"}:
        return path.read_text(encoding="utf-8")
    if suffix == ".pdf":
        from pypdf import PdfReader

        pages = PdfReader(str(path)).pages
        return "\n".join((p.extract_text() or "") for i, p in enumerate(pages, 1) if page in (None, i))
    if suffix == ".docx":
        import docx

        document = docx.Document(str(path))
        cells = [c.text for t in document.tables for r in t.rows for c in r.cells]
        return "\n".join([p.text for p in document.paragraphs] + cells)
    if suffix == ".html":
        from bs4 import BeautifulSoup

        return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser").get_text(" ")
    raise AssertionError(suffix)


def assert_cited_and_verbatim(answer, corpus_dir: Path, chunks) -> None:
    assert not answer.abstained
    assert answer.citations
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert sorted({int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}) == [c.n for c in answer.citations]
    for c in answer.citations:
        assert verify(c) is None, (c.source, c.quote)
        assert normalize_ws(c.quote) in normalize_ws(independent_text(corpus_dir / c.source, c.page)), c.quote
        # the citation says where the quote is: a chunk of that file, section and page holds it
        assert any(
            (k.source, k.section, k.page, k.title) == (c.source, c.section, c.page, c.title)
            and normalize_ws(c.quote) in normalize_ws(k.text)
            for k in chunks
        ), c


@pytest.mark.parametrize(("question", "source"), ANSWERABLE)
def test_answer_cites_verbatim_quotes_from_the_right_file(served, question, source):
    answer = served.assistant.ask(question)
    assert answer.mode == "extractive"
    assert_cited_and_verbatim(answer, served.corpus.dir, served.assistant.loaded_index.chunks)
    assert answer.citations[0].source == source
    assert answer.nearest == []


def test_answer_from_pdf_page_two_cites_page_two(served):
    answer = served.assistant.ask(ANSWERABLE[0][0])
    c = answer.citations[0]
    assert (c.source, c.page) == ("handbok.pdf", 2)
    assert c.section == " > ".join(served.corpus.pdf_pages[1][0])
    assert any("30 procent" in x.quote and x.page == 2 for x in answer.citations)


def test_answer_sentences_are_whole_source_sentences(served):
    answer = served.assistant.ask(ANSWERABLE[0][0])
    for c in answer.citations:
        assert normalize_ws(c.quote) in {normalize_ws(s) for s in split_sentences(c.context)}
        assert normalize_ws(display_sentence(c.quote)) in normalize_ws(answer.answer)


def test_citation_carries_document_dates_from_front_matter(served):
    answer = served.assistant.ask(ANSWERABLE[3][0])
    c = next(c for c in answer.citations if c.source == "direktupphandling.md")
    assert (c.valid_as_of, c.last_checked) == ("2026-11-01", "2026-11-28")
    pdf = served.assistant.ask(ANSWERABLE[0][0]).citations[0]
    assert (pdf.valid_as_of, pdf.last_checked) == (None, None)


def test_citation_carries_the_validity_end_too():
    chunk = Chunk(id="c", text="Gränsen är 700 000 kronor.", source="a.md", corpus_dir="/k", title="A", section="",
                  page=None, position=0, metadata={"valid_until": "2027-01-31", "last_checked": "2026-11-28"})
    c = Citation.from_hit(1, Hit(chunk, 1.0), "Gränsen är 700 000 kronor.")
    assert (c.valid_as_of, c.last_checked, c.valid_until) == (None, "2026-11-28", "2027-01-31")


@pytest.mark.parametrize("question", UNRELATED)
def test_unrelated_question_is_refused_with_nearest_passages(served, question):
    answer = served.assistant.ask(question)
    assert answer.abstained
    assert answer.citations == []
    assert answer.answer.startswith(REFUSAL)
    assert 1 <= len(answer.nearest) <= 3
    for hit in answer.nearest:
        assert f"({hit.chunk.source})" in answer.answer


def test_empty_question_is_refused(served):
    answer = served.assistant.ask("   ")
    assert answer.abstained and answer.citations == []


def test_answer_json_contract(served):
    data = served.assistant.ask(ANSWERABLE[1][0]).to_json("q1")
    assert set(data) == {"id", "question", "answer", "abstained", "citations", "mode", "nearest", "timings_ms",
                         "reason", "notice", "confidence"}
    assert 0.0 < data["confidence"] <= 1.0 and data["notice"] == ""
    assert data["id"] == "q1"
    for c in data["citations"]:
        assert set(c) == {"n", "source", "title", "section", "page", "quote"}
    refused = served.assistant.ask(UNRELATED[0]).to_json()
    assert refused["abstained"] and refused["nearest"]
    assert set(refused["nearest"][0]) == {"rank", "score", "source", "title", "section", "page", "text"}


def test_display_sentence_drops_list_marks_and_source_notes():
    assert display_sentence("- Gränsen är 700 000 kronor (källa: S54).") == "Gränsen är 700 000 kronor."
    assert display_sentence("2. Andra punkten (källor: S1, S2)") == "Andra punkten"


def test_display_sentence_drops_a_spelled_out_source_with_its_date():
    # the loader spells "(källa: S75)" out as the source's name, which may carry a date in brackets
    assert display_sentence("Bidraget beslutas av nämnden (källa: SKR, Föreningsbidrag (2023-12-13)).") == (
        "Bidraget beslutas av nämnden.")


def test_refusal_text_lists_the_nearest(served):
    hits, _ = served.assistant.search(UNRELATED[0], k=2)
    text = refusal_text(hits)
    assert text.splitlines()[0] == REFUSAL
    assert all(f"({h.chunk.source})" in text for h in hits)


def test_answer_text_has_no_line_breaks_inside_sentences(served):
    answer = served.assistant.ask(ANSWERABLE[0][0])
    assert "\n" not in answer.answer


# --- questions that ask for a number (the rule itself: test_policy.py) ------------------------------


def test_number_question_answered_with_the_number(served):
    answer = served.assistant.ask("Upp till vilket belopp får en kommun direktupphandla?")
    assert not answer.abstained
    first = answer.answer.split(" [1]")[0]  # the answering sentence leads, with the amount asked for
    assert "700 000 kronor" in first


def test_number_question_the_documents_do_not_answer_is_refused(served):
    """Near the corpus' topics (the regional networks are described), but no passage states a cost."""
    answer = served.assistant.ask("Vad kostar det att delta i de regionala nätverken för sociala företag?")
    assert answer.abstained and answer.citations == []
    assert answer.answer.splitlines()[0] == REFUSAL


# --- composition, directly (no index, no model) ------------------------------------------------------


def _hit(text: str, source: str = "a.md", page: int | None = None, metadata: dict | None = None) -> Hit:
    return Hit(Chunk("c-" + source, text, source, "/korpus", "Titel", "Kapitel > Avsnitt", page, 0,
                     metadata or {}), 1.0)


def test_compose_numbers_the_quotes_and_shows_them_without_list_marks_or_source_notes():
    md = _hit("- Gränsen är 700 000 kronor (källa: S54)\nMer text.", metadata={"valid_as_of": "2026-11-01"})
    pdf = _hit("Minst 30 procent ska vara missgynnade.", "b.pdf", page=2)
    chosen = [Candidate(md, 0, "- Gränsen är 700 000 kronor (källa: S54)"),
              Candidate(pdf, 0, "Minst 30 procent ska vara missgynnade.")]
    text, citations = compose(chosen)
    assert text == "Gränsen är 700 000 kronor. [1] Minst 30 procent ska vara missgynnade. [2]"
    assert [(c.n, c.source, c.page, c.quote) for c in citations] == [
        (1, "a.md", None, "- Gränsen är 700 000 kronor (källa: S54)"),  # the quote stays verbatim
        (2, "b.pdf", 2, "Minst 30 procent ska vara missgynnade.")]
    assert (citations[0].valid_as_of, citations[0].last_checked, citations[1].valid_as_of) == ("2026-11-01", None,
                                                                                               None)
    assert citations[0].context == md.chunk.text and citations[0].section == "Kapitel > Avsnitt"


def test_refusal_text_gives_the_reason_then_where_the_nearest_passages_are():
    nearest = [_hit("x", "handbok.pdf", page=3), _hit("y", "anteckningar.txt")]
    assert refusal_text(nearest, "Frågan gäller ett belopp.").splitlines() == [
        REFUSAL, "Frågan gäller ett belopp.", REFUSAL_HINT,
        "- Titel – Kapitel > Avsnitt, s. 3 (handbok.pdf)", "- Titel – Kapitel > Avsnitt (anteckningar.txt)"]
    assert refusal_text([]) == REFUSAL  # nothing near: no hint about passages below
