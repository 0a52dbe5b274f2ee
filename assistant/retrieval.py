"""Retrieval over one index generation: dense (Chroma), lexical (BM25) and their fusion.

Hybrid (the default mode) fuses by z-scores (``zscore_fusion``, the default ``fusion``): each retriever's
scores standardised over the whole index (from statistics kept at index time: serving never loads every
chunk), weighted and summed, plus the evidence of the chunk's document (``with_document_evidence``).
Reciprocal rank fusion (``rrf``; Cormack et al., 2009) is only the alternative (``ASSISTANT_FUSION=rrf``).
The learned relevance model then reorders the best fused passages (assistant.policy.rerank, called by the
pipeline).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from threadpoolctl import threadpool_limits

from assistant.embeddings import TextEmbedder
from assistant.indexer import Generation, NoIndexError, build_config, current_generation
from assistant.lexical import LexicalIndex, top_positive
from assistant.settings import Settings
from assistant.store import ChunkStore, CollectionMissingError, NotFoundError, missing_collection
from assistant.summaries import Summaries
from assistant.types import Chunk, Hit


class IndexMismatchError(Exception):
    pass


class LoadedIndex:
    """A served generation: its Chroma store plus the small or memory-mapped summaries written at index
    time (assistant.summaries). Opening it reads no chunk and no vector, so serving memory does not grow
    with the corpus: per question, search asks Chroma for candidates, scores them (and the rest of their
    documents) by row of the generation's vector file, and fetches from Chroma only the texts it returns."""

    def __init__(self, generation: Generation, embedder: TextEmbedder, settings: Settings | None = None):
        self.generation = generation
        self.store = ChunkStore(generation.path, embedder, settings)  # embedded, or on the Chroma server
        self.summaries = Summaries(generation.path)
        self.size = self.summaries.size

    @classmethod
    def open(cls, settings: Settings, embedder: TextEmbedder) -> LoadedIndex:
        gen = current_generation(settings.index_dir)
        if gen is None:
            raise NoIndexError(f"Inget index i {settings.index_dir}; kör `assistant index` först.")
        if gen.manifest.get("config") != build_config(settings, embedder):
            raise IndexMismatchError(
                "Indexet byggdes med en annan modell eller andra inställningar; kör `assistant index` "
                "för att bygga om det."
            )
        # a ChromaServerError (unreachable, token refused, no such tenant) passes as it is: the index exists,
        # its server cannot be used now, and the chat and the API say so with the message naming the setting
        try:
            return cls(gen, embedder, settings)
        except NotFoundError as exc:  # the server lost it, or ASSISTANT_CHROMA_URL names another server
            raise CollectionMissingError(missing_collection(gen.path, settings)) from exc
        except OSError as exc:
            raise NoIndexError(f"Indexet {gen.path.name} är ofullständigt; kör `assistant index` igen.") from exc

    @property
    def name(self) -> str:
        return self.generation.path.name

    @property
    def lexical(self) -> LexicalIndex:
        return self.summaries.lexical

    @cached_property
    def chunks(self) -> list[Chunk]:
        """Every chunk, in position order. For tools and tests: it reads the whole collection, so search
        never uses it."""
        return self.store.chunks()

    @cached_property
    def vectors(self) -> np.ndarray:
        """Every chunk vector, row i for ``chunks[i]``; like ``chunks``, never used by search."""
        by_id = self.store.vectors([c.id for c in self.chunks])
        return np.stack([by_id[c.id] for c in self.chunks])

    def documents(self) -> dict[str, dict]:
        return self.generation.files


@dataclass
class RetrievalResult:
    hits: list[Hit]
    query_vector: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    def __init__(self, index: LoadedIndex, embedder: TextEmbedder, settings: Settings):
        # Our matrix products are small; multi-threaded OpenBLAS then busy-waits after each one and
        # steals the cores torch needs for the next query embedding (measured: 59 → 21 ms per search on
        # SweQUAD-MC with 2 cores). One BLAS thread for the whole process is the cheap fix.
        threadpool_limits(limits=1, user_api="blas")
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> RetrievalResult:
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval
        n = max(self.settings.candidates, k)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        qvec = self.embedder.embed_queries([query])[0]
        timings["embed_query"] = (time.perf_counter() - t) * 1000
        summaries = self.index.summaries

        rankings: list[list[int]] = []
        if mode in ("dense", "hybrid"):
            t = time.perf_counter()
            found = self.index.store.query(qvec, n)
            rankings.append([p for p in summaries.positions([i for i, _ in found]) if p is not None])
            timings["dense"] = (time.perf_counter() - t) * 1000
        lexical_all = np.zeros(0, dtype=np.float32)  # set whenever fusion needs it (hybrid)
        lexical_scores: dict[int, float] = {}
        if mode in ("lexical", "hybrid"):
            t = time.perf_counter()
            lexical_all = self.index.lexical.scores(query)  # one float per chunk for this query only
            found_lex = top_positive(lexical_all, n)
            lexical_scores = dict(found_lex)
            rankings.append([i for i, _ in found_lex])
            timings["lexical"] = (time.perf_counter() - t) * 1000
        if mode not in ("dense", "lexical", "hybrid"):
            raise ValueError(f"unknown retrieval mode {mode!r}")

        t = time.perf_counter()
        dense: dict[int, float] = {}
        if mode == "hybrid":
            fused, dense = self._fuse(rankings, qvec, lexical_all)
        else:
            fused = {pos: 1.0 / (rank + 1) for rank, pos in enumerate(rankings[0])}
        order = sorted(fused, key=lambda p: -fused[p])[:k]
        dense.update(self._cosines([p for p in order if p not in dense], qvec))
        ids = summaries.ids(order)
        chunks = self.index.store.get(ids)
        hits = [
            Hit(chunk=chunks[i], score=fused[p], dense=dense[p], lexical=lexical_scores.get(p))
            for p, i in zip(order, ids, strict=True)
        ]
        timings["fuse"] = (time.perf_counter() - t) * 1000
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return RetrievalResult(hits, qvec, timings)

    def _cosines(self, positions: list[int], qvec: np.ndarray) -> dict[int, float]:
        """Exact cosines of these chunks: the refusal rule uses them. Read by row from the generation's
        vector file (pread); a generation written before that file fetches them from Chroma by id.
        In float64: z-scores divide by a spread of ~0.02, which would turn float32 rounding into ~5e-6."""
        summaries = self.index.summaries
        q = np.asarray(qvec, dtype=np.float64)
        if summaries.vectors is not None:
            cosines = summaries.rows(positions).astype(np.float64) @ q
            return dict(zip(positions, cosines.tolist(), strict=True))
        ids = summaries.ids(positions)
        vectors = self.index.store.vectors(ids)
        return {p: float(vectors[i].astype(np.float64) @ q) for p, i in zip(positions, ids, strict=True)}

    def _fuse(self, rankings: list[list[int]], qvec: np.ndarray,
              lexical: np.ndarray) -> tuple[dict[int, float], dict[int, float]]:
        """Fuse the candidates of both retrievers; returns (fused score, cosine) by position.

        "zscore" (default): (1 - w) * z(chunk cosine) + w * z(bm25), each standardised over the whole
        index. On SweFAQ, SweQUAD-MC dev and the eval set it beat reciprocal rank fusion on all three
        (mean nDCG@10 0.828 vs 0.801 at w = 0.25): RRF throws away how far ahead the stronger retriever's
        first hit is. "rrf" stays available as the textbook alternative.

        The whole-index statistics come without the whole index: the cosines' mean and spread from the
        vector mean μ and covariance Σ of index time (μ·q, sqrt(qᵀΣq)); BM25's from the query's score
        vector, which bm25s computes over the memory-mapped postings anyway (per-term sums stored at index
        time would give the mean, not the spread: terms of one query co-occur). Only the candidates and
        the other chunks of their documents (for the document evidence) are scored."""
        candidates = {p for ranking in rankings for p in ranking}
        if self.settings.fusion == "rrf":
            return rrf(rankings, self.settings.rrf_k), {}
        summaries = self.index.summaries
        w, dw = self.settings.lexical_weight, self.settings.document_weight
        docs = {p: summaries.document(p) for p in candidates}
        members = {d: summaries.document_positions(d) for d in set(docs.values())} if dw > 0 else {}
        positions = set(candidates).union(*members.values())
        dense = self._cosines(sorted(positions), qvec)
        fused = zscore_fusion(dense, summaries.dense_moments(qvec), lexical, w)
        if dw > 0:
            return with_document_evidence(fused, docs, members, dw), dense
        return {p: fused[p] for p in candidates}, dense


def zscore_fusion(dense: Mapping[int, float], dense_moments: tuple[float, float], lexical: np.ndarray,
                  weight: float) -> dict[int, float]:
    """(1 - weight) · z(cosine) + weight · z(BM25) for each position of ``dense`` (position → cosine).

    ``dense_moments`` is the (mean, spread) of the query's cosine over the whole index; ``lexical`` is the
    query's BM25 score of every chunk, so its moments are exact. A retriever whose scores do not vary
    (spread 0: say no chunk shares a term) contributes 0, not a division by zero."""
    lexical_mean, lexical_std = (float(lexical.mean()), float(lexical.std())) if lexical.size else (0.0, 0.0)
    return {p: (1 - weight) * _z(cos, *dense_moments) + weight * _z(float(lexical[p]), lexical_mean, lexical_std)
            for p, cos in dense.items()}


def with_document_evidence(fused: Mapping[int, float], document_of: Mapping[int, str],
                           members: Mapping[str, Iterable[int]], weight: float) -> dict[int, float]:
    """The fused score of each position in ``document_of`` plus ``weight`` times its document's evidence:
    the mean of the document's two best fused scores (its one score when it has one chunk). ``members``
    lists every position of each of those documents, all of which ``fused`` must score (see
    ``_document_evidence``, the whole-index reference)."""
    evidence = {}
    for d in set(document_of.values()):
        best = sorted((fused[q] for q in members[d]), reverse=True)[:2]
        evidence[d] = (best[0] + best[-1]) / 2
    return {p: fused[p] + weight * evidence[d] for p, d in document_of.items()}


def _z(x: float, mean: float, std: float) -> float:
    return (x - mean) / std if std > 0 else 0.0


def _document_evidence(scores: np.ndarray, doc_of: np.ndarray) -> np.ndarray:
    """For each chunk, the mean of its document's two best chunk scores (over a whole-index score array:
    the reference that ``Retriever._fuse`` reproduces per candidate document, and the tests compare with).

    A section of a document that answers the question from several sides outranks a lone passage that
    happens to share the words: on SweFAQ, SweQUAD-MC and the eval set it raised nDCG@10 on all three
    (mean 0.829 → 0.836 at weight 0.4)."""
    order = np.lexsort((-scores, doc_of))  # by document, best chunk first
    docs = doc_of[order]
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    best = scores[order[starts]]
    second_idx = np.minimum(starts + 1, len(order) - 1)
    has_second = (second_idx < len(order)) & (docs[second_idx] == docs[starts]) & (second_idx != starts)
    second = np.where(has_second, scores[order[second_idx]], best)
    per_doc = np.empty(int(doc_of.max()) + 1, dtype=np.float64)
    per_doc[docs[starts]] = (best + second) / 2
    return per_doc[doc_of]


def _standardise(x: np.ndarray) -> np.ndarray:
    """z-scores over the whole array: the reference for the summaries-based statistics of ``_fuse``."""
    std = float(x.std()) if x.size else 0.0
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def rrf(rankings: list[list[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: sum over rankings of 1 / (k + rank)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores
