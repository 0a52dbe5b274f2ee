"""assistant.summaries: serving from the index-time summaries ranks and scores exactly like the former
whole-index computation (every vector and the BM25 index in memory), kept below as the reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.evaluation import load_questions
from assistant.indexer import NoIndexError, build_index, current_generation
from assistant.lexical import LexicalIndex, top_positive
from assistant.pipeline import Assistant
from assistant.retrieval import LoadedIndex, Retriever, _document_evidence, _standardise
from assistant.settings import Settings
from assistant.summaries import VECTORS, Summaries, VectorRows, dense_stats, stored_vectors
from assistant.types import Hit, document_key

ROOT = Path(__file__).resolve().parents[2]


def reference_search(index: LoadedIndex, lexical: LexicalIndex, settings: Settings, query: str,
                     qvec: np.ndarray, k: int, mode: str, exact: bool = True) -> list[Hit]:
    """Retriever.search as it was before the summaries: cosines of every chunk, BM25 of every chunk, both
    standardised over the whole index, document evidence over every chunk. ``exact=False`` computes in
    float32 as that code did: its cosines and means carry ~1e-7 of rounding, which z-scores (spread ~0.02)
    turn into up to ~4e-6 and fusion sums to ~1.5e-5 (measured on the eval questions), so the 1e-5
    comparison is against the same computation in float64."""
    chunks, vectors = index.chunks, index.vectors
    position = {c.id: i for i, c in enumerate(chunks)}
    _, doc_of = np.unique([document_key(c.corpus_dir, c.source) for c in chunks], return_inverse=True)
    n = max(settings.candidates, k)
    dense_sims = vectors.astype(np.float64) @ qvec.astype(np.float64) if exact else vectors @ qvec
    rankings: list[list[int]] = []
    if mode in ("dense", "hybrid"):
        rankings.append([position[i] for i, _ in index.store.query(qvec, n) if i in position])
    lexical_all = np.zeros(len(chunks), dtype=np.float32)
    lexical_scores: dict[int, float] = {}
    if mode in ("lexical", "hybrid"):
        lexical_all = lexical.scores(query)
        found = top_positive(lexical_all, n)
        lexical_scores = dict(found)
        rankings.append([i for i, _ in found])
    if mode == "hybrid":
        candidates = {p for ranking in rankings for p in ranking}
        w = settings.lexical_weight
        precision = np.float64 if exact else np.float32
        fused_all = ((1 - w) * _standardise(dense_sims.astype(precision))
                     + w * _standardise(lexical_all.astype(precision)))
        fused_all = fused_all + settings.document_weight * _document_evidence(fused_all, doc_of)
        fused = {p: float(fused_all[p]) for p in candidates}
    else:
        fused = {pos: 1.0 / (rank + 1) for rank, pos in enumerate(rankings[0])}
    order = sorted(fused, key=lambda p: -fused[p])[:k]
    return [Hit(chunk=chunks[p], score=fused[p], dense=float(dense_sims[p]), lexical=lexical_scores.get(p))
            for p in order]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, embedder) -> Assistant:
    """The shipped corpus, indexed once for this module."""
    folder = tmp_path_factory.mktemp("shipped")
    assistant = Assistant(Settings(corpus_dirs=(ROOT / "corpus",), index_dir=folder / "index"), embedder)
    assistant.index()
    return assistant


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_eval_questions_rank_and_score_as_the_whole_index_computation(shipped, mode):
    settings = shipped.settings
    index = LoadedIndex.open(settings, shipped.embedder)  # fresh: nothing read by an earlier test
    retriever = Retriever(index, shipped.embedder, settings)
    served_lexical = index.lexical
    questions = [q["question"] for q in load_questions(ROOT / "eval" / "questions.jsonl")]
    results = [retriever.search(q, k=10, mode=mode) for q in questions]
    assert "chunks" not in vars(index) and "vectors" not in vars(index)  # search read no whole collection

    in_memory = LexicalIndex([c.embedding_text() for c in index.chunks])  # as every process built it before
    assert [c.id for c in index.chunks] == index.summaries.ids(range(index.size))
    compared = 0
    for question, result in zip(questions, results, strict=True):
        assert np.array_equal(served_lexical.scores(question), in_memory.scores(question))  # mmap: same BM25
        expected = reference_search(index, in_memory, settings, question, result.query_vector, 10, mode)
        assert [h.chunk.id for h in result.hits] == [h.chunk.id for h in expected], question
        assert [h.chunk for h in result.hits] == [h.chunk for h in expected]
        assert np.allclose([h.score for h in result.hits], [h.score for h in expected], rtol=0, atol=1e-5)
        assert np.allclose([h.dense for h in result.hits], [h.dense for h in expected], rtol=0, atol=1e-5)
        assert [h.lexical for h in result.hits] == [h.lexical for h in expected]
        compared += len(result.hits)
        as_before = reference_search(index, in_memory, settings, question, result.query_vector, 10, mode, False)
        assert [h.chunk.id for h in result.hits] == [h.chunk.id for h in as_before], question
        assert np.allclose([h.score for h in result.hits], [h.score for h in as_before], rtol=0, atol=5e-5)
    assert len(questions) >= 100 and compared >= 5 * len(questions)


def test_dense_moments_are_the_mean_and_spread_of_the_cosines(tmp_path):
    rng = np.random.default_rng(7)
    vectors = rng.normal(0.5, 1.0, (1000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stats = dense_stats(vectors, batch=300)  # several batches
    q = vectors[3]
    sims = (vectors @ q).astype(np.float64)
    assert stats["mean"] @ q == pytest.approx(sims.mean(), abs=1e-9)
    assert np.sqrt(q @ stats["cov"] @ q) == pytest.approx(sims.std(), abs=1e-9)


def test_ids_map_to_positions_and_documents(shipped):
    summaries: Summaries = shipped.loaded_index.summaries
    chunks = shipped.loaded_index.chunks
    picked = [0, 7, len(chunks) - 1]
    assert summaries.positions([chunks[p].id for p in picked] + ["ingen-sådan"]) == [*picked, None]
    for p in picked:
        doc = summaries.document(p)
        same = [c.id for c in chunks if (c.corpus_dir, c.source) == (chunks[p].corpus_dir, chunks[p].source)]
        assert summaries.ids(summaries.document_positions(doc)) == same


def test_a_generation_without_its_summaries_is_no_index(corpus, settings_for, embedder):
    settings = settings_for(corpus.dir)
    build_index(settings, embedder)
    shutil.rmtree(current_generation(settings.index_dir).path / "lexical")
    with pytest.raises(NoIndexError, match="ofullständigt"):
        LoadedIndex.open(settings, embedder)


def test_vector_rows_are_read_in_any_order_without_mapping_the_file(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", vectors)
    rows = VectorRows(tmp_path / "vectors.npy", 50)
    # unsorted, repeated, runs of neighbours (a document's chunks) and single rows, first and last included
    wanted = [49, 3, 4, 5, 3, 0, 20, 21, 49, 7]
    assert np.array_equal(rows.rows(wanted), vectors[wanted])
    assert rows.rows([]).shape == (0, 8)
    maps = Path("/proc/self/maps")
    if maps.exists():  # the point of pread: nothing of the file is mapped into the serving process
        assert str(tmp_path / "vectors.npy") not in maps.read_text()
    rows.close()


@pytest.mark.parametrize("array", [np.zeros((49, 8), np.float32), np.zeros((50, 8), np.float64),
                                   np.zeros(50 * 8, np.float32)])
def test_a_vectors_file_of_another_shape_or_type_is_refused(tmp_path, array):
    np.save(tmp_path / "vectors.npy", array)
    with pytest.raises(OSError, match="float32 rows"):
        VectorRows(tmp_path / "vectors.npy", 50)


def test_stored_vectors_are_the_file_rows_of_the_ids_or_none(corpus, settings_for, hashing_embedder):
    settings = settings_for(corpus.dir)
    build_index(settings, hashing_embedder)
    folder = current_generation(settings.index_dir).path
    ids = Summaries(folder).ids(range(Summaries(folder).size))
    written = np.load(folder / VECTORS)
    assert np.array_equal(stored_vectors(folder, ids), written)  # all of them, in position order
    picked = [5, 0, 1, 2, len(ids) - 1, 5]
    got = stored_vectors(folder, [ids[p] for p in picked])
    assert got.dtype == np.float32 and np.array_equal(got, written[picked])
    assert stored_vectors(folder, [ids[0], "ingen-sådan"]) is None  # the caller fetches them elsewhere
    (folder / VECTORS).unlink()  # a generation written before the file
    assert stored_vectors(folder, ids[:1]) is None
