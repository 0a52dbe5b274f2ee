"""assistant.cite.verify: a quote must stand verbatim (whitespace-normalised) in the cited file and page."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.cite import verify
from assistant.types import Citation


def _citation(corpus, path, quote, page=None, section="") -> Citation:
    return Citation(n=1, source=path.relative_to(corpus.dir).as_posix(), title="", section=section, page=page,
                    quote=quote, corpus_dir=str(corpus.dir))


def test_markdown_quote_is_found_despite_other_line_breaks(corpus):
    # in the file the sentence is broken over two lines; quoted on one line with extra spaces
    quote = "En kommun kan alltså  direktupphandla när värdet av köpet ligger under 700 000 kronor."
    assert verify(_citation(corpus, corpus.markdown, quote)) is None


def test_quote_in_a_subfolder_text_file(corpus):
    quote = "Vinsten i ett arbetsintegrerande socialt företag återinvesteras i den egna verksamheten."
    assert verify(_citation(corpus, corpus.text, quote)) is None


@pytest.mark.parametrize("which", ["docx", "html"])
def test_quotes_in_docx_and_html_are_checked_against_the_extracted_text(corpus, which):
    quotes = {
        "docx": "Regionala nätverk för sociala företag samordnas av en särskild samordnare i varje län.",
        "html": "Publicera frågor och svar för alla.",  # <b> inside the sentence in the source
    }
    assert verify(_citation(corpus, getattr(corpus, which), quotes[which])) is None


def test_pdf_quote_must_be_on_the_cited_page(corpus):
    quote = "Minst 30 procent av de anställda hos leverantören ska ha funktionsnedsättning"
    assert verify(_citation(corpus, corpus.pdf, quote, page=2)) is None
    assert verify(_citation(corpus, corpus.pdf, quote, page=None)) is None  # anywhere in the document
    wrong = verify(_citation(corpus, corpus.pdf, quote, page=3))
    assert wrong is not None and "sidan 3" in wrong


def test_altered_quote_is_rejected(corpus):
    reason = verify(_citation(corpus, corpus.markdown, "Direktupphandlingsgränsen i LOU är 800 000 kronor"))
    assert reason is not None and "ordagrant" in reason and "direktupphandling.md" in reason


def test_missing_and_unreadable_files_are_reported(corpus):
    gone = _citation(corpus, corpus.docx, "Samverkan följs upp en gång per år")
    corpus.docx.unlink()
    assert "finns inte" in verify(gone)
    corpus.pdf.write_bytes(b"%PDF-1.4 trasig")
    assert "kan inte läsas" in verify(_citation(corpus, corpus.pdf, "Minst 30 procent", page=2))


def test_corpus_dir_argument_overrides_the_citation(corpus, tmp_path):
    citation = replace(_citation(corpus, corpus.text, "Arbetsintegrerande sociala företag anställer personer"),
                       corpus_dir=str(tmp_path / "någon-annanstans"))
    assert verify(citation) is not None
    assert verify(citation, corpus.dir) is None
