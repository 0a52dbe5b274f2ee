"""Lexical search for Swedish: BM25 (bm25s) over Snowball stems plus compound parts.

Swedish writes compounds as one word ("direktupphandlingsgränsen"), so a question about "gränsen för
direktupphandling" shares no stem with it. We split compounds against the corpus' own vocabulary
(longest known head, optional linking -s-/-e-, known tail, recursively) and index the parts beside the
whole word; queries get the same treatment. The vocabulary comes from the indexed text, so no word list
has to ship and domain terms split correctly. The splitter is ours because no maintained Swedish
decompounder is on PyPI; BM25 and stemming come from maintained libraries.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import Stemmer

from assistant import lean_imports
from assistant.text import words

with lean_imports.without("scipy", "scipy.sparse"):  # bm25s' numpy backend needs no SciPy (see lean_imports)
    import bm25s
    from bm25s.stopwords import STOPWORDS_SWEDISH

# bm25s sets its own logger to DEBUG; once anything configures the root logger, "Building index from
# tokens" lands in the CLI's output. Its warnings still come through.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_STEMMER = Stemmer.Stemmer("swedish")
STOPWORDS = frozenset(STOPWORDS_SWEDISH) | {"får", "ska", "kan", "hur", "vad", "vilka", "vilken", "finns"}
MIN_PART = 4  # shortest compound part we accept ("krav" ok, "upp" or "ing" no)
# Endings that are inflection or derivation, not words: "upphandl|ing" is no compound.
_SUFFIXES = frozenset({"ande", "ende", "ning", "ningar", "ningen", "else", "heten", "heter", "arna", "erna",
                       "orna", "ings", "ering", "eringen", "lig", "liga", "ligt", "skap"})
MIN_COMPOUND = 9  # words shorter than this are left whole
VOCABULARY = "vocabulary.txt"  # the decompounder's words, beside a saved BM25 index

# A few English domain terms → Swedish, so English questions still hit lexically (dense search does
# the heavy lifting across languages; this only keeps BM25 from contributing pure noise).
ENGLISH = {
    "procurement": "upphandling", "procure": "upphandla", "reserved": "reserverad", "reserve": "reservera",
    "contract": "kontrakt", "contracts": "kontrakt", "municipality": "kommun", "municipalities": "kommuner",
    "social": "social", "enterprise": "företag", "enterprises": "företag", "company": "företag",
    "threshold": "tröskelvärde", "thresholds": "tröskelvärden", "direct": "direkt", "award": "upphandling",
    "limit": "gräns", "grant": "bidrag", "grants": "bidrag", "state": "stats", "aid": "stöd",
    "network": "nätverk", "handbook": "handbok", "partnership": "partnerskap", "idea": "idéburen",
    "nonprofit": "idéburen", "non-profit": "idéburen", "employment": "sysselsättning",
    "requirement": "krav", "requirements": "krav", "register": "register", "guide": "vägledning",
    "work": "arbete", "integration": "integration", "disabilities": "funktionsnedsättning",
    "unemployed": "arbetslösa", "lots": "delkontrakt", "dialogue": "dialog", "market": "marknad",
    "glossary": "ordlista", "coordinator": "samordnare", "policy": "styrdokument", "court": "dom",
}


# English procurement terms of more than one word, replaced before the word list above applies.
ENGLISH_PHRASES = {
    "direct award threshold": "direktupphandlingsgräns", "direct award": "direktupphandling",
    "direct procurement": "direktupphandling", "reserved contract": "reserverat kontrakt",
    "social enterprise": "socialt företag", "work integration": "arbetsintegrerande",
    "work-integrating": "arbetsintegrerande", "state aid": "statsstöd", "public procurement": "upphandling",
    "framework agreement": "ramavtal", "market dialogue": "marknadsdialog", "employment requirement":
    "sysselsättningskrav", "innovation partnership": "innovationspartnerskap",
}
_PHRASE = re.compile(r"\b(" + "|".join(re.escape(p) for p in sorted(ENGLISH_PHRASES, key=len, reverse=True))
                     + r")\b", re.I)


def translate_english(text: str) -> str:
    return _PHRASE.sub(lambda m: ENGLISH_PHRASES[m.group(1).lower()], text)


def stem(word: str) -> str:
    return _STEMMER.stemWord(word)


class Decompounder:
    def __init__(self, vocabulary: set[str]):
        self.stems = {stem(w) for w in vocabulary if len(w) >= MIN_PART} | {
            w for w in vocabulary if len(w) >= MIN_PART
        }
        self._cache: dict[str, tuple[str, ...]] = {}

    def _known(self, part: str) -> bool:
        return len(part) >= MIN_PART and part not in _SUFFIXES and (part in self.stems or stem(part) in self.stems)

    def split(self, word: str) -> tuple[str, ...]:
        """Compound parts of ``word`` (empty when it is not a known compound)."""
        if len(word) < MIN_COMPOUND:
            return ()
        if word in self._cache:
            return self._cache[word]
        best: tuple[str, ...] = ()
        for i in range(len(word) - MIN_PART, MIN_PART - 1, -1):  # longest head first
            head, tail = word[:i], word[i:]
            heads = [head] + ([head[:-1]] if head[-1] in "se" and len(head) > MIN_PART else [])
            head_ok = next((h for h in heads if self._known(h)), None)
            if head_ok is None:
                continue
            if self._known(tail):
                best = (head_ok, tail)
            else:
                rest = self.split(tail)
                if rest:
                    best = (head_ok, *rest)
            if best:
                break
        if best and len(best) == 2:
            deeper = self.split(best[0])  # "direktupphandling" → "direkt", "upphandling"
            if deeper:
                best = (*deeper, best[1])
        self._cache[word] = best
        return best


class LexicalIndex:
    """BM25 over stems and compound parts; ``search`` returns (position, score) best first."""

    def __init__(self, texts: list[str]):
        self.size = len(texts)
        # only words the decompounder can use; saved beside the BM25 index so serving needs no chunk text
        self.vocabulary = {w for t in texts for w in words(t) if w not in STOPWORDS and len(w) >= MIN_PART}
        self.decompounder = Decompounder(self.vocabulary)
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        corpus = [self.tokens(t) for t in texts]
        self.bm25.index([c or ["∅"] for c in corpus], show_progress=False)

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False)
        (folder / VOCABULARY).write_text("\n".join(sorted(self.vocabulary)), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """A saved index with its postings memory-mapped: the same scores, without reading them into memory."""
        self = cls.__new__(cls)
        self.bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        self.size = int(self.bm25.scores["num_docs"])
        self.vocabulary = set((folder / VOCABULARY).read_text(encoding="utf-8").split("\n")) - {""}
        self.decompounder = Decompounder(self.vocabulary)
        return self

    def tokens(self, text: str, translate: bool = False) -> list[str]:
        out: list[str] = []
        if translate:
            text = translate_english(text)
        for w in words(text):
            if translate and w in ENGLISH:
                w = ENGLISH[w]
            if w in STOPWORDS or len(w) < 2:
                continue
            out.append(_stem_cached(w))
            out.extend(_stem_cached(p) for p in self.decompounder.split(w))
        return out

    def scores(self, query: str) -> np.ndarray:
        tokens = self.tokens(query, translate=True)
        if not tokens or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        return top_positive(self.scores(query), n)


def top_positive(scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """(position, score) of the n best scores above zero, best first."""
    top = np.argsort(-scores, kind="stable")[:n]
    return [(int(i), float(scores[i])) for i in top if scores[i] > 0]


@lru_cache(maxsize=200_000)
def _stem_cached(word: str) -> str:
    return stem(word)
