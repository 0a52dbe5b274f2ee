"""Extractive answers (the default, no LLM): the best-supported sentences of the top passages, each with
an inline marker [n] pointing at a numbered, verbatim quote. No sentence is written by the machine, so
nothing can be claimed that a person cannot open and read."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.embeddings import Embedder
from assistant.lexical import STOPWORDS, stem
from assistant.text import split_sentences, words
from assistant.types import Citation, Hit

REFUSAL = "Underlaget svarar inte på det."
REFUSAL_HINT = "De närmaste avsnitten i underlaget finns nedan; de kan ge ledtrådar men besvarar inte frågan."

_SOURCE_NOTE = re.compile(r"\s*\((?:källa|källor|source)[^)]*\)", re.I)
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_NOT_PROSE = re.compile(r"^\s*\|?\s*:?-{3,}")  # table separator rows


@dataclass
class ScoredSentence:
    text: str  # verbatim sentence from the chunk
    hit: Hit
    score: float
    index: int  # position within the chunk


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1}


def candidate_sentences(hits: list[Hit], max_passages: int) -> list[tuple[str, Hit, int]]:
    out = []
    for hit in hits[:max_passages]:
        for i, sentence in enumerate(split_sentences(hit.chunk.text)):
            if _NOT_PROSE.match(sentence) or len(words(sentence)) < 4:
                continue
            out.append((sentence, hit, i))
    return out


def score_sentences(
    question: str, query_vector: np.ndarray, hits: list[Hit], embedder: Embedder, max_passages: int = 3
) -> list[ScoredSentence]:
    """Sentence score = cosine to the question + term overlap + a prior for the passage's rank."""
    candidates = candidate_sentences(hits, max_passages)
    if not candidates:
        return []
    vectors = embedder.embed_passages([s for s, _, _ in candidates])
    sims = vectors @ query_vector
    q_terms = content_stems(question)
    scored = []
    for (sentence, hit, i), sim in zip(candidates, sims, strict=True):
        overlap = len(q_terms & content_stems(sentence)) / len(q_terms) if q_terms else 0.0
        prior = 0.02 * (1.0 / hit.rank if hit.rank else 0.0)
        scored.append(ScoredSentence(sentence, hit, float(sim) + 0.10 * overlap + prior, i))
    return sorted(scored, key=lambda s: -s.score)


def select(scored: list[ScoredSentence], n: int, margin: float = 0.04) -> list[ScoredSentence]:
    """Top sentences within ``margin`` of the best, no near-duplicates."""
    chosen: list[ScoredSentence] = []
    seen: list[set[str]] = []
    for s in scored:
        if len(chosen) >= n or (chosen and s.score < chosen[0].score - margin):
            break
        terms = set(words(s.text))
        if any(len(terms & t) / max(1, len(terms | t)) > 0.6 for t in seen):
            continue
        chosen.append(s)
        seen.append(terms)
    return chosen


def display_sentence(sentence: str) -> str:
    """The sentence as shown in the answer: without list markers and "(källa: …)" notes.
    The citation keeps the verbatim sentence."""
    text = _LIST_MARK.sub("", sentence)
    return _SOURCE_NOTE.sub("", text).strip()


def citation_for(n: int, hit: Hit, quote: str) -> Citation:
    c = hit.chunk
    meta = c.metadata or {}
    return Citation(
        n=n, source=c.source, title=c.title, section=c.section, page=c.page, quote=quote,
        corpus_dir=c.corpus_dir, context=c.text,
        valid_as_of=_str_or_none(meta.get("valid_as_of")), last_checked=_str_or_none(meta.get("last_checked")),
    )


def compose(chosen: list[ScoredSentence]) -> tuple[str, list[Citation]]:
    citations: list[Citation] = []
    parts: list[str] = []
    for n, s in enumerate(chosen, start=1):
        citations.append(citation_for(n, s.hit, s.text))
        shown = display_sentence(s.text)
        if shown and shown[-1] not in ".!?:":
            shown += "."
        parts.append(f"{shown} [{n}]")
    return " ".join(parts), citations


def refusal_text(nearest: list[Hit]) -> str:
    lines = [REFUSAL, REFUSAL_HINT]
    for h in nearest:
        where = " – ".join(p for p in (h.chunk.title, h.chunk.section) if p)
        page = f", s. {h.chunk.page}" if h.chunk.page else ""
        lines.append(f"- {where}{page} ({h.chunk.source})")
    return "\n".join(lines)


def _str_or_none(value) -> str | None:
    return None if value in (None, "") else str(value)
