"""assistant.retrieval over a real Chroma index: page/section of hits, the three modes, the dense scores,
index/model mismatches, and serving a re-indexed generation without a restart."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.indexer import NoIndexError, build_index
from assistant.pipeline import Assistant, retrieval_query
from assistant.retrieval import (
    IndexMismatchError,
    LoadedIndex,
    Retriever,
    _document_evidence,
    _standardise,
    rrf,
    with_document_evidence,
    zscore_fusion,
)
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


def test_search_scores_by_row_and_a_generation_without_vectors_fetches_them_from_chroma(
        corpus, settings_for, hashing_embedder, deployment, monkeypatch):
    settings = settings_for(corpus.dir, **deployment)
    build_index(settings, hashing_embedder)
    questions = [PAGE2_QUESTION, "Vem samordnar de regionala nätverken?", "Hur bakar man surdegsbröd?"]
    index = LoadedIndex.open(settings, hashing_embedder)
    assert index.summaries.vectors is not None
    with monkeypatch.context() as patched:  # every cosine comes from the vector file's rows
        patched.setattr(index.store, "vectors", lambda ids: pytest.fail("vectors fetched from Chroma"))
        by_row = [Retriever(index, hashing_embedder, settings).search(q, k=8) for q in questions]

    (index.generation.path / "vectors.npy").unlink()  # as a generation written before the file existed
    older = LoadedIndex.open(settings, hashing_embedder)
    assert older.summaries.vectors is None
    fetched = [Retriever(older, hashing_embedder, settings).search(q, k=8) for q in questions]
    for row, chroma in zip(by_row, fetched, strict=True):
        assert [h.chunk for h in row.hits] == [h.chunk for h in chroma.hits]
        # Chroma hands back its re-normalised copy of each vector: equal up to float32 rounding
        assert np.allclose([h.score for h in row.hits], [h.score for h in chroma.hits], rtol=0, atol=1e-5)
        assert np.allclose([h.dense for h in row.hits], [h.dense for h in chroma.hits], rtol=0, atol=1e-6)


def test_follow_up_questions_borrow_the_previous_question():
    history = ["Vad är direktupphandlingsgränsen i LOU?"]
    # the follow-up first: the relevance model answers the question it reads first
    assert retrieval_query("Och i LUF?", history) == f"Och i LUF? {history[0]}"
    assert retrieval_query("Gäller det även för bilaga 2-tjänster?", history).endswith(history[0])
    standalone = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"
    assert retrieval_query(standalone, history) == standalone
    assert retrieval_query("Och i LUF?", []) == "Och i LUF?"


def test_follow_up_search_and_relevance_read_the_previous_question(fake_served):
    """History must reach both retrieval and the relevance model: alone, "Och i praktiken?" names nothing
    the corpus is about; after a question on reserved contracts it is about reserved contracts."""
    assistant = fake_served.assistant
    history = ["Vad gäller för reserverade kontrakt?"]
    alone, _ = assistant.search("Och i praktiken?")
    followed, _ = assistant.search("Och i praktiken?", history=history)
    assert (followed[0].chunk.source, followed[0].chunk.page) == ("handbok.pdf", 2)
    assert (alone[0].chunk.source, alone[0].chunk.page) != ("handbok.pdf", 2)
    joined, _ = assistant.search(retrieval_query("Och i praktiken?", history))
    assert [h.chunk.id for h in followed] == [h.chunk.id for h in joined]
    assert assistant.relevance.calls[-1][0] == "Och i praktiken? Vad gäller för reserverade kontrakt?"
    assert assistant.ask("Och i praktiken?", history=history).retrieval_query == assistant.relevance.calls[-1][0]


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


# --- fusion: the pure functions and the served computation --------------------------------------------


def test_zscore_fusion_standardises_each_retriever_over_the_whole_index():
    cosines = np.array([0.9, 0.5, 0.4, 0.2])
    bm25 = np.array([0.0, 6.0, 1.0, 1.0])
    fused = zscore_fusion({0: 0.9, 1: 0.5}, (cosines.mean(), cosines.std()), bm25, weight=0.25)
    expected = 0.75 * _standardise(cosines) + 0.25 * _standardise(bm25)
    assert fused == pytest.approx({0: expected[0], 1: expected[1]})
    assert fused[0] > fused[1]  # chunk 0 leads on cosine (z 1.57 vs 0), chunk 1 on BM25 (z 1.71 vs -0.85)
    heavier = zscore_fusion({0: 0.9, 1: 0.5}, (cosines.mean(), cosines.std()), bm25, weight=0.75)
    assert heavier[1] > heavier[0]  # the weight decides which lead counts
    # weight 0 is the cosine's z-score alone, and a flat retriever contributes nothing
    assert zscore_fusion({0: 0.9, 1: 0.5}, (0.5, 0.25), bm25, weight=0.0) == {0: 1.6, 1: 0.0}
    flat = zscore_fusion({0: 0.9}, (0.5, 0.0), np.zeros(4), weight=0.25)
    assert flat == {0: 0.0}


def test_document_evidence_adds_the_mean_of_the_documents_two_best_fused_scores():
    fused = {0: 1.0, 1: 3.0, 2: 2.0, 3: 5.0}
    boosted = with_document_evidence(fused, {0: "a", 3: "b"}, {"a": [0, 1, 2], "b": [3]}, weight=0.5)
    assert boosted == {0: 1.0 + 0.5 * 2.5, 3: 5.0 + 0.5 * 5.0}  # only the candidates are returned
    scores, doc_of = np.array([1.0, 3.0, 2.0, 5.0]), np.array([0, 0, 0, 1])
    assert [boosted[0] - 1.0, boosted[3] - 5.0] == (0.5 * _document_evidence(scores, doc_of)[[0, 3]]).tolist()


@pytest.mark.parametrize("question", [PAGE2_QUESTION, "Vem samordnar de regionala nätverken?",
                                      "Hur bakar man surdegsbröd?"])
def test_hybrid_scores_are_the_whole_index_zscores_plus_document_evidence(fake_served, question):
    """What search serves from the summaries equals the computation over every chunk and vector."""
    index = fake_served.assistant.loaded_index
    settings = fake_served.settings
    result = Retriever(index, fake_served.assistant.embedder, settings).search(question, k=5, mode="hybrid")
    cosines = index.vectors.astype(np.float64) @ result.query_vector.astype(np.float64)
    bm25 = index.lexical.scores(question)
    w = settings.lexical_weight
    fused = (1 - w) * _standardise(cosines) + w * _standardise(bm25)
    documents = sorted({(c.corpus_dir, c.source) for c in index.chunks})
    doc_of = np.array([documents.index((c.corpus_dir, c.source)) for c in index.chunks])
    fused = fused + settings.document_weight * _document_evidence(fused, doc_of)
    by_id = {c.id: fused[i] for i, c in enumerate(index.chunks)}
    assert [h.score for h in result.hits] == pytest.approx([by_id[h.chunk.id] for h in result.hits], abs=1e-5)
    assert [h.dense for h in result.hits] == pytest.approx(
        [cosines[[c.id for c in index.chunks].index(h.chunk.id)] for h in result.hits], abs=1e-5)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
