"""Extractive answers (the default, no LLM): the best-supported sentences of the top passages, each with
an inline marker [n] pointing at a numbered, verbatim quote. No sentence is written by the machine, so
nothing can be claimed that a person cannot open and read."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.lexical import STOPWORDS, stem
from assistant.text import normalize_ws, words
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
    row: int  # row in the index's sentence table


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1}


# Questions that ask for an amount, a date or a count are answered by sentences that contain one.
_WANTS_FIGURE = re.compile(
    r"\b(hur mycket|hur många|hur stor|hur höga?|vilket belopp|när|vilket år|sedan när|hur länge|hur lång|"
    r"how much|how many|when|threshold|limit)\b|(belopp|gräns|tröskelvärde|procent)",  # also in compounds
    re.I,
)
_HAS_FIGURE = re.compile(r"\d")
# Sentences about the document itself ("Den här vägledningen riktar sig till …") never answer a question.
_ABOUT_DOCUMENT = re.compile(
    r"^(det här|den här|detta|denna|här) (dokument\w*|vägledning\w*|text\w*|avsnitt\w*|kapitl\w*|"
    r"handbok\w*|sammanställning\w*|ordlista\w*|beskrivs)\b",
    re.I,
)


@dataclass(frozen=True)
class SentenceWeights:
    """How sentences are scored; chosen on the project's eval set (key-fact coverage), see README."""

    overlap: float = 0.10  # share of the question's content stems found in the sentence
    rank_prior: float = 0.02  # divided by the passage's rank
    figure_bonus: float = 0.03  # the question asks for an amount or a date and the sentence has digits
    max_passages: int = 3


def score_sentences(question: str, hits: list[Hit], index, sentence_sims: np.ndarray,
                    weights: SentenceWeights = SentenceWeights()) -> list[ScoredSentence]:
    """Sentence score = cosine to the question (vectors stored at index time) + term overlap + a small
    prior for the passage's rank + a bonus for figures when the question asks for one."""
    lexical = index.lexical  # its tokens split compounds: "direktupphandlingsgränsen" ~ "gränsen"
    q_terms = set(lexical.tokens(question, translate=True))
    wants_figure = bool(_WANTS_FIGURE.search(question))
    scored = []
    for hit in hits[: weights.max_passages]:
        pos = index.position.get(hit.chunk.id)
        if pos is None:
            continue
        for j, row in enumerate(index.sentences_of[pos]):
            sentence = index.sentences[row]
            if _NOT_PROSE.match(sentence) or _ABOUT_DOCUMENT.match(sentence) or len(words(sentence)) < 4:
                continue
            overlap = len(q_terms & set(lexical.tokens(sentence))) / len(q_terms) if q_terms else 0.0
            score = float(sentence_sims[row]) + weights.overlap * overlap + weights.rank_prior / max(hit.rank, 1)
            if wants_figure and _HAS_FIGURE.search(sentence):
                score += weights.figure_bonus
            scored.append(ScoredSentence(sentence, hit, score, j, row))
    return sorted(scored, key=lambda s: -s.score)


def select(scored: list[ScoredSentence], n: int, vectors: np.ndarray, margin: float = 0.08,
           max_similarity: float = 0.92) -> list[ScoredSentence]:
    """Top sentences within ``margin`` of the best, skipping ones that say the same thing again (alike
    in meaning and with the same figures: "700 000 kronor från 2022" is no repeat of "615 312 kronor").

    Sentences of one passage keep their document order, so an answer reads the way its source does."""
    chosen: list[ScoredSentence] = []
    for s in scored:
        if len(chosen) >= n or (chosen and s.score < chosen[0].score - margin):
            break
        if any(float(vectors[s.row] @ vectors[c.row]) > max_similarity and _figures(s.text) == _figures(c.text)
               for c in chosen):
            continue
        chosen.append(s)
    first_seen = {}
    for i, s in enumerate(chosen):
        first_seen.setdefault(s.hit.chunk.id, i)
    return sorted(chosen, key=lambda s: (first_seen[s.hit.chunk.id], s.index))


def _figures(text: str) -> set[str]:
    return set(re.findall(r"\d[\d\s]*\d|\d", text))


def display_sentence(sentence: str) -> str:
    """The sentence as shown in the answer: without list markers and "(källa: …)" notes.
    The citation keeps the verbatim sentence."""
    text = _LIST_MARK.sub("", sentence)
    return normalize_ws(_SOURCE_NOTE.sub("", text))


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
