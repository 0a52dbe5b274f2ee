"""The answer policy: do the documents answer the question, and with which sentences?

This is the one place where that is decided. The learned relevance model (assistant.crossencoder) reads
each candidate sentence of the best retrieved passages together with the question and gives the
probability that the sentence answers it. From those probabilities:

* the passages are reordered (``rerank``): the fused retrieval score plus the evidence of the passage's
  best sentence;
* the question is answered only when some sentence is judged to answer it (``ANSWER_THRESHOLD``);
  otherwise the assistant says the documents do not tell, and shows the nearest passages;
* the answer quotes the answering sentence first, then at most a few more sentences that answer too or
  that continue it in the same passage, within a word budget.

Every constant below says where it was chosen; the figures are in the README ("Answer policy"). They are
the same for every corpus: nothing here may be tuned per corpus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from assistant.text import is_heading_like, split_sentences, words
from assistant.types import Hit

# --- the constants -----------------------------------------------------------------------------------
PASSAGES = 8  # fused passages whose sentences the model reads: recall of the answering sentence vs latency
MAX_PAIRS = 48  # at most this many (question, sentence) pairs per question: the latency budget on 2 cores
ANSWER_THRESHOLD = 0.5  # the best sentence must be judged at least this likely to answer
SUPPORT_THRESHOLD = 0.5  # a further sentence from anywhere must reach this too …
SUPPORT_MARGIN = 0.35  # … and be within this of the best one
CONTEXT_THRESHOLD = 0.15  # the sentence right after the best one (same passage) joins at this
MAX_SENTENCES = 3
MAX_WORDS = 70  # stop adding sentences once the answer is this long (the best sentence always stays)
RERANK_WEIGHT = 0.5  # weight of the best sentence's log-odds beside the fused passage score
MIN_WORDS = 4  # a shorter "sentence" is a stub, never an answer


@dataclass
class Candidate:
    """A sentence that could be quoted, with the model's judgement of it."""

    hit: Hit
    index: int  # position among its chunk's sentences
    text: str  # verbatim from the chunk
    score: float = float("nan")  # P(this sentence answers the question)


class SentenceScorer(Protocol):
    def score(self, question: str, candidates: Sequence[Candidate]) -> np.ndarray:
        """P(answers) for each candidate, in order."""
        ...


@dataclass
class Decision:
    answer: bool
    sentences: list[Candidate]  # in the order they are shown: the answering sentence first
    hits: list[Hit]  # the passages in their final order
    reason: str = ""  # why not, when more can be said than "the documents do not tell"
    best: float = 0.0  # the best sentence score (for evaluation and calibration)
    candidates: list[Candidate] = field(default_factory=list)


# --- which sentences can answer at all ------------------------------------------------------------------

_TABLE_ROW = re.compile(r"^\s*\|")
_LIST_STUB = re.compile(r":\s*$")
# Sentences about the document itself ("Den här vägledningen riktar sig till …") never answer a question.
_ABOUT_DOCUMENT = re.compile(
    r"^(det här|den här|detta|denna|här) (dokument\w*|vägledning\w*|text\w*|avsnitt\w*|kapitl\w*|"
    r"handbok\w*|sammanställning\w*|ordlista\w*|rapport\w*|beskrivs)\b",
    re.I,
)


def can_answer(sentence: str) -> bool:
    """False for title lines, headings, list stubs ("Krav:"), table rows and sentences about the document."""
    text = sentence.strip()
    return not (
        len(words(text)) < MIN_WORDS
        or is_heading_like(text)
        or _TABLE_ROW.match(text)
        or _LIST_STUB.search(text)
        or _ABOUT_DOCUMENT.match(text)
    )


def candidates(hits: Sequence[Hit], passages: int = PASSAGES, max_pairs: int = MAX_PAIRS) -> list[Candidate]:
    """The answer-capable sentences of the top passages, best passage first, at most ``max_pairs``."""
    out: list[Candidate] = []
    for hit in hits[:passages]:
        for i, sentence in enumerate(split_sentences(hit.chunk.text)):
            if can_answer(sentence):
                out.append(Candidate(hit, i, sentence))
                if len(out) >= max_pairs:
                    return out
    return out


# --- passages ------------------------------------------------------------------------------------------


def log_odds(p: float, eps: float = 1e-4) -> float:
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def rerank(hits: Sequence[Hit], scored: Sequence[Candidate], weight: float = RERANK_WEIGHT) -> list[Hit]:
    """Passages whose sentences were read, by fused score + weight · log-odds of their best sentence;
    the rest keep their fused order behind them (a passage with no answer-capable sentence counts as its
    fused score plus the log-odds of the lowest probability, so it sinks but is not lost)."""
    best: dict[str, float] = {}
    for c in scored:
        key = c.hit.chunk.id
        best[key] = max(best.get(key, 0.0), c.score)
    read = {c.hit.chunk.id for c in scored} | {h.chunk.id for h in hits[:PASSAGES]}
    head = [h for h in hits if h.chunk.id in read]
    tail = [h for h in hits if h.chunk.id not in read]
    for h in head:
        h.score = h.score + weight * log_odds(best.get(h.chunk.id, 0.0))
    head.sort(key=lambda h: -h.score)
    ordered = head + tail
    for rank, h in enumerate(ordered, start=1):
        h.rank = rank
    return ordered


# --- the decision ----------------------------------------------------------------------------------------


def decide(hits: list[Hit], scored: list[Candidate]) -> Decision:
    """Answer with the best sentence (and what belongs with it), or refuse."""
    if not scored:
        return Decision(False, [], hits)
    best = max(scored, key=lambda c: c.score)
    if best.score < ANSWER_THRESHOLD:
        return Decision(False, [], hits, best=best.score, candidates=scored)
    chosen = [best]
    budget = len(words(best.text))

    def room(c: Candidate) -> bool:
        return (len(chosen) < MAX_SENTENCES and budget + len(words(c.text)) <= MAX_WORDS
                and not any(_same_content(c.text, d.text) for d in chosen))

    follower = next((c for c in scored if c.hit.chunk.id == best.hit.chunk.id and c.index == best.index + 1), None)
    if follower is not None and follower.score >= CONTEXT_THRESHOLD and room(follower):
        chosen.append(follower)
        budget += len(words(follower.text))
    floor = max(SUPPORT_THRESHOLD, best.score - SUPPORT_MARGIN)
    for c in sorted(scored, key=lambda c: -c.score):
        if c in chosen or c.score < floor:
            continue
        if room(c):
            chosen.append(c)
            budget += len(words(c.text))
    rest = sorted(chosen[1:], key=lambda c: (c.hit.rank, c.index))
    return Decision(True, [best, *rest], hits, best=best.score, candidates=scored)


def _same_content(a: str, b: str) -> bool:
    """Two sentences saying the same thing (a fact repeated in two documents): nearly the same words
    and the same figures ("700 000 kronor från 2022" is no repeat of "615 312 kronor")."""
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return False
    overlap = len(wa & wb) / min(len(wa), len(wb))
    return overlap >= 0.8 and set(re.findall(r"\d+", a)) == set(re.findall(r"\d+", b))
