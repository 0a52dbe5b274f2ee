"""Retrieval over one index generation: dense (Chroma), lexical (BM25) and their fusion.

Hybrid is z-score fusion: each retriever's scores standardised over the whole index, weighted and summed,
plus the evidence of the chunk's document (see ``Retriever._fuse``); reciprocal rank fusion (Cormack et
al., 2009) is the alternative. The learned relevance model then reorders the best fused passages
(assistant.policy.rerank, called by the pipeline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from chromadb.errors import NotFoundError
from threadpoolctl import threadpool_limits

from assistant.embeddings import Embedder
from assistant.indexer import Generation, NoIndexError, build_config, current_generation
from assistant.lexical import LexicalIndex, top_positive
from assistant.settings import Settings
from assistant.store import ChunkStore
from assistant.types import Chunk, Hit


class IndexMismatchError(Exception):
    pass


class LoadedIndex:
    """A served generation: its Chroma store plus in-memory chunks, vectors and BM25."""

    def __init__(self, generation: Generation, embedder: Embedder, settings: Settings | None = None):
        self.generation = generation
        self.store = ChunkStore(generation.path, embedder, settings)  # embedded, or on the Chroma server
        self.chunks: list[Chunk] = self.store.chunks()
        self.position = {c.id: i for i, c in enumerate(self.chunks)}
        vectors = self.store.vectors([c.id for c in self.chunks])
        dim = embedder.dimension
        self.vectors = (
            np.stack([vectors[c.id] for c in self.chunks]) if self.chunks else np.zeros((0, dim), np.float32)
        )
        # chunk position -> document number, for the document-level evidence in fusion
        _, self.doc_of = np.unique([f"{c.corpus_dir}::{c.source}" for c in self.chunks], return_inverse=True)

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder) -> LoadedIndex:
        gen = current_generation(settings.index_dir)
        if gen is None:
            raise NoIndexError(f"Inget index i {settings.index_dir}; kör `assistant index` först.")
        if gen.manifest.get("config") != build_config(settings, embedder):
            raise IndexMismatchError(
                "Indexet byggdes med en annan modell eller andra inställningar; kör `assistant index` "
                "för att bygga om det."
            )
        try:
            return cls(gen, embedder, settings)
        except NotFoundError as exc:  # the server lost it, or ASSISTANT_CHROMA_URL names another server
            raise NoIndexError(
                f"Indexets vektorer ({gen.path.name}) finns inte i Chroma; kör `assistant index` igen."
            ) from exc

    @property
    def name(self) -> str:
        return self.generation.path.name

    @cached_property
    def lexical(self) -> LexicalIndex:
        return LexicalIndex([c.embedding_text() for c in self.chunks])

    def documents(self) -> dict[str, dict]:
        return self.generation.files


@dataclass
class RetrievalResult:
    hits: list[Hit]
    query_vector: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    def __init__(self, index: LoadedIndex, embedder: Embedder, settings: Settings):
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
        # Exact cosines for every chunk and sentence: a few hundred thousand multiply-adds at this scale.
        # They give each hit its true similarity (the refusal rule uses it) and fusion full score
        # distributions; Chroma's HNSW index proposes the dense candidates.
        dense_sims = self.index.vectors @ qvec if len(self.index.chunks) else np.zeros(0)

        rankings: list[list[int]] = []
        if mode in ("dense", "hybrid"):
            t = time.perf_counter()
            found = self.index.store.query(qvec, n)
            rankings.append([self.index.position[i] for i, _ in found if i in self.index.position])
            timings["dense"] = (time.perf_counter() - t) * 1000
        lexical_all = np.zeros(len(self.index.chunks), dtype=np.float32)
        lexical_scores: dict[int, float] = {}
        if mode in ("lexical", "hybrid"):
            t = time.perf_counter()
            lexical_all = self.index.lexical.scores(query)
            found_lex = top_positive(lexical_all, n)
            lexical_scores = dict(found_lex)
            rankings.append([i for i, _ in found_lex])
            timings["lexical"] = (time.perf_counter() - t) * 1000
        if mode not in ("dense", "lexical", "hybrid"):
            raise ValueError(f"unknown retrieval mode {mode!r}")

        if mode == "hybrid":
            fused = self._fuse(rankings, dense_sims, lexical_all)
        else:
            fused = {pos: 1.0 / (rank + 1) for rank, pos in enumerate(rankings[0])}
        order = sorted(fused, key=lambda p: -fused[p])
        hits = [
            Hit(
                chunk=self.index.chunks[p],
                score=fused[p],
                dense=float(dense_sims[p]),
                lexical=lexical_scores.get(p),
            )
            for p in order
        ]
        hits = hits[:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return RetrievalResult(hits, qvec, timings)

    def _fuse(self, rankings: list[list[int]], dense_sims: np.ndarray, lexical: np.ndarray) -> dict[int, float]:
        """Fuse the candidates of both retrievers.

        "zscore" (default): (1 - w) * z(chunk cosine) + w * z(bm25), each standardised over the whole
        index. On SweFAQ, SweQUAD-MC dev and the eval set it beat reciprocal rank fusion on all three
        (mean nDCG@10 0.828 vs 0.801 at w = 0.25): RRF throws away how far ahead the stronger retriever's
        first hit is. "rrf" stays available as the textbook alternative."""
        candidates = {p for ranking in rankings for p in ranking}
        if self.settings.fusion == "rrf":
            return rrf(rankings, self.settings.rrf_k)
        w = self.settings.lexical_weight
        fused = (1 - w) * _standardise(dense_sims) + w * _standardise(lexical)
        if self.settings.document_weight > 0 and len(fused):
            fused = fused + self.settings.document_weight * _document_evidence(fused, self.index.doc_of)
        return {p: float(fused[p]) for p in candidates}


def _document_evidence(scores: np.ndarray, doc_of: np.ndarray) -> np.ndarray:
    """For each chunk, the mean of its document's two best chunk scores.

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
    std = float(x.std()) if x.size else 0.0
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def rrf(rankings: list[list[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: sum over rankings of 1 / (k + rank)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores
