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


# A question that asks for a number - a cost, a duration, a count - is answered only by a sentence that
# states that kind of number. A related sentence with some other figure ("lagen (2022:900) trädde i kraft
# 2023-01-01" for "vad kostar registreringen?") reads like an answer while leaving the question open: a
# wrong answer in disguise, so the assistant says the documents do not tell. Hand-written because the
# answer types are few and this is where an extractive answer most easily misleads.
_NUM_WORD = r"(två|tre|fyra|fem|sex|sju|åtta|nio|tio|elva|tolv|\w+(ton|tio)|\w*(hundra|tusen)\w*|two|three|\w+teen)"
_ASKS = (  # (answer type, question pattern); the first match decides
    ("since", re.compile(r"\b(hur länge (har|hade)|sedan när|how long ha(s|ve))\b", re.I)),  # "sedan 1990"
    ("duration", re.compile(r"\b(hur länge|hur långa?|how long)\b", re.I)),
    ("money", re.compile(
        r"\b(vad kostar|kostar \w+ något|vilket belopp|hur stort belopp|hur mycket (pengar|kostar|stöd|bidrag)|"
        r"hur hög\w* (avgift|sanktionsavgift|ersättning|pris)\w*|how much (money|aid|grant|does)|what does .+ cost)\b",
        re.I)),
    ("count", re.compile(r"\b(hur många|hur mycket|hur stor\w*|hur hög\w*|how many|how much)\b", re.I)),
)
_STATES = {
    "since": re.compile(r"\b(19|20)\d{2}\b"),
    "duration": re.compile(
        rf"\b(\d+|en|ett|{_NUM_WORD})\s+(år|månad\w*|veck\w*|dag\w*|timm\w*|years?|months?|weeks?|days?)\b"
        r"|\bhalvår\w*", re.I),
    "money": re.compile(r"\d[\d\s,.]*\s*(kr\b|kronor|sek\b|euro|eur\b|prisbasbelopp|procent|%|"
                        r"(miljon|miljard)\w* (kronor|euro))|\b(gratis|kostnadsfri\w*|avgiftsfri\w*|ingen avgift)\b",
                        re.I),
    "count": re.compile(rf"\d|\b({_NUM_WORD}|hälften|halva|dubbelt|tredjedel\w*|fjärdedel\w*|procent\w*)\b", re.I),
}
# Figures that are not quantities: dates, years, SFS numbers, chapters and sections of a law.
_NOT_QUANTITY = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{4}:\d+\b|\b\d+\s*(kap\.|§)|§+\s*\d+|\b(19|20)\d{2}\b|\bartikel \d+", re.I
)


RESCUE_MARGIN = 0.12  # chosen on the number-asking questions of SweFAQ, SweQUAD-MC dev and eval (README)


def asked_number(question: str) -> str | None:
    """The kind of number the question asks for ("since", "duration", "money", "count"), or None."""
    return next((kind for kind, pattern in _ASKS if pattern.search(question)), None)


def states_number(kind: str, sentence: str) -> bool:
    text = display_sentence(sentence)  # the display form has no "(källa: S54)" notes
    if kind != "since":
        text = _NOT_QUANTITY.sub(" ", text)
    return bool(_STATES[kind].search(text))


def with_asked_number(kind: str | None, chosen: list[ScoredSentence], wider: list[ScoredSentence], n: int,
                      vectors: np.ndarray, margin: float = RESCUE_MARGIN) -> list[ScoredSentence]:
    """``chosen`` when it states the ``kind`` of number the question asks for (or none is asked for).
    Otherwise the best sentence of all retrieved passages (``wider``) that states one joins the answer,
    if it scores within ``margin`` of the best chosen sentence; else [] (the caller refuses)."""
    if kind is None or not chosen or any(states_number(kind, s.text) for s in chosen):
        return chosen
    floor = max(s.score for s in chosen) - margin
    best = next((s for s in wider if s.score >= floor and states_number(kind, s.text)), None)
    if best is None:
        return []
    # best first and no margin: it stays in even though it scores below the chosen ones
    rest = sorted((s for s in chosen if s.row != best.row), key=lambda s: -s.score)
    return select([best, *rest], n, vectors, margin=float("inf"))


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


MISSING_NUMBER = {  # why a number question was refused, shown under REFUSAL
    "money": "Frågan gäller ett belopp, men inget av de funna avsnitten anger något.",
    "duration": "Frågan gäller en tidsrymd, men inget av de funna avsnitten anger någon.",
    "since": "Frågan gäller sedan när, men inget av de funna avsnitten anger något årtal.",
    "count": "Frågan gäller ett antal eller en storlek, men inget av de funna avsnitten anger någon siffra.",
}


def refusal_text(nearest: list[Hit], reason: str = "") -> str:
    lines = [REFUSAL, *([reason] if reason else []), REFUSAL_HINT]
    for h in nearest:
        where = " – ".join(p for p in (h.chunk.title, h.chunk.section) if p)
        page = f", s. {h.chunk.page}" if h.chunk.page else ""
        lines.append(f"- {where}{page} ({h.chunk.source})")
    return "\n".join(lines)


def _str_or_none(value) -> str | None:
    return None if value in (None, "") else str(value)
