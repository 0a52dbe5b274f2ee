"""assistant.retrieval over a real Chroma index: page/section of hits, the three modes, the dense scores,
index/model mismatches, and serving a re-indexed generation without a restart."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.indexer import NoIndexError, build_index
from assistant.pipeline import Assistant, retrieval_query
from assistant.retrieval import IndexMismatchError, LoadedIndex, rrf
from assistant.settings import Settings

PAGE2_QUESTION = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_search_hit_on_page_two_text_reports_page_two(served, mode):
    hits, timings = served.assistant.search(PAGE2_QUESTION, mode=mode)
    top = hits[0].chunk
    assert (top.source, top.page) == ("handbok.pdf", 2)
    assert top.section == " > ".join(served.corpus.pdf_pages[1][0])
    assert top.title == served.corpus.pdf_title
    assert "30 procent" in top.text
    assert "total" in timings


@pytest.mark.parametrize(
    ("question", "source", "section"),
    [
        ("Vem samordnar de regionala nätverken för sociala företag?", "riktlinjer.docx",
         "Samverkan > Regionala nätverk"),
        ("Får kommunen föra dialog med marknaden innan upphandlingen annonseras?", "marknadsdialog.html",
         "Dialog före upphandling"),
        ("När ska kommunen dokumentera skälen till en direktupphandling?", "direktupphandling.md",
         "Gränsen för direktupphandling > Dokumentation"),
        ("Vad gör ett arbetsintegrerande socialt företag med vinsten?", "anteckningar/arbetsintegrering.txt", ""),
    ],
)
def test_each_format_is_found_with_its_section(served, question, source, section):
    hits, _ = served.assistant.search(question)
    assert (hits[0].chunk.source, hits[0].chunk.section) == (source, section)


def test_hits_are_ranked_and_limited(served):
    hits, _ = served.assistant.search(PAGE2_QUESTION, k=4)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.chunk.id for h in hits}) == 4
    everything, _ = served.assistant.search(PAGE2_QUESTION, k=100)
    assert len(everything) == served.report.chunks  # never more hits than chunks


def test_dense_score_is_the_cosine_of_question_and_passage(served, embedder):
    # the retriever's own order (Assistant.search also reranks with the relevance model)
    hits = served.assistant.retriever.search(PAGE2_QUESTION, k=3, mode="dense").hits
    q = embedder.embed_queries([PAGE2_QUESTION])[0]
    passages = embedder.embed_passages([h.chunk.embedding_text() for h in hits])
    assert np.allclose([h.dense for h in hits], passages @ q, atol=1e-4)
    assert hits[0].dense >= hits[1].dense >= hits[2].dense


def test_chroma_ranking_agrees_with_brute_force(served, embedder):
    index = served.assistant.loaded_index
    q = embedder.embed_queries(["samverkan mellan kommun och ideell förening"])[0]
    found = index.store.query(q, len(index.chunks))
    brute = index.vectors @ q
    assert [i for i, _ in found] == [index.chunks[p].id for p in np.argsort(-brute)]
    assert np.allclose([s for _, s in found], np.sort(brute)[::-1], atol=1e-4)


def test_lexical_mode_only_returns_passages_sharing_a_term(served):
    hits, _ = served.assistant.search("kommunstyrelsen", mode="lexical")
    assert hits and all("kommunstyrelsen" in h.chunk.embedding_text().lower() for h in hits)
    assert all(h.lexical and h.lexical > 0 for h in hits)


def test_unknown_mode_is_an_error(served):
    with pytest.raises(ValueError):
        served.assistant.search(PAGE2_QUESTION, mode="magic")


def test_index_of_another_model_is_refused(served, other_prefix_embedder):
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(served.settings.with_(query_prefix="fråga: ", passage_prefix=""), other_prefix_embedder)
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(served.settings.with_(chunk_tokens=64), served.assistant.embedder)


def test_missing_index_is_reported(tmp_path, embedder):
    assistant = Assistant(Settings(corpus_dirs=(tmp_path / "korpus",), index_dir=tmp_path / "index"), embedder)
    assert assistant.needs_index()
    with pytest.raises(NoIndexError, match="assistant index"):
        assistant.search("Vad gäller?")


def test_a_running_assistant_serves_a_new_generation_without_restart(corpus, settings_for, embedder, deployment):
    settings = settings_for(corpus.dir, **deployment)
    build_index(settings, embedder)
    running = Assistant(settings, embedder)
    question = "Vilken myndighet ansvarar för tillsynen över sociala företag?"
    before, _ = running.search(question)
    assert "tillsyn.md" not in {h.chunk.source for h in before}
    (corpus.dir / "tillsyn.md").write_text(
        "# Tillsyn\n\nTillsynen över sociala företag ansvarar Tillsynsmyndigheten för sociala företag för.\n",
        encoding="utf-8",
    )
    build_index(settings, embedder)  # as if another process (the CLI) re-indexed
    after, _ = running.search(question)
    assert after[0].chunk.source == "tillsyn.md"


def test_follow_up_questions_borrow_the_previous_question():
    history = ["Vad är direktupphandlingsgränsen i LOU?"]
    assert retrieval_query("Och i LUF?", history) == f"{history[0]} Och i LUF?"
    assert retrieval_query("Gäller det även för bilaga 2-tjänster?", history).startswith(history[0])
    standalone = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"
    assert retrieval_query(standalone, history) == standalone
    assert retrieval_query("Och i LUF?", []) == "Och i LUF?"


def test_follow_up_search_uses_history(served):
    history = ["Vad gäller för reserverade kontrakt?"]
    with_history, _ = served.assistant.search("Och i praktiken?", history=history)
    joined, _ = served.assistant.search(retrieval_query("Och i praktiken?", history))
    assert [h.chunk.id for h in with_history] == [h.chunk.id for h in joined]
    assert (with_history[0].chunk.source, with_history[0].chunk.page) == ("handbok.pdf", 2)


def test_rrf_sums_reciprocal_ranks():
    scores = rrf([[10, 20, 30], [20, 40]], k=60)
    assert scores[20] == pytest.approx(1 / 62 + 1 / 61)
    assert scores[10] == pytest.approx(1 / 61)
    assert max(scores, key=scores.get) == 20  # found by both retrievers
    assert set(scores) == {10, 20, 30, 40}


def test_document_evidence_is_the_mean_of_each_documents_two_best_chunks():
    import numpy as np

    from assistant.retrieval import _document_evidence

    scores = np.array([1.0, 3.0, 2.0, 5.0, 0.5, -1.0])
    doc_of = np.array([0, 0, 0, 1, 2, 2])
    assert _document_evidence(scores, doc_of).tolist() == [2.5, 2.5, 2.5, 5.0, -0.25, -0.25]
