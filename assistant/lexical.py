"""Lexical search for Swedish: BM25 (bm25s) over Snowball stems plus compound parts.

Swedish writes compounds as one word ("direktupphandlingsgränsen"), so a question about "gränsen för
direktupphandling" shares no stem with it. We split compounds against the corpus' own vocabulary
(longest known head, optional linking -s-/-e-, known tail, recursively) and index the parts beside the
whole word; queries get the same treatment. The vocabulary comes from the indexed text, so no word list
has to ship and domain terms split correctly. The splitter is ours because no maintained Swedish
decompounder is on PyPI; BM25 and stemming come from maintained libraries.

Serving a saved index reads it differently from bm25s' own ``load``, for memory at scale (issue 12): at
100k chunks bm25s' token dictionary and our set of known words held ~65 MB in every serving process and
its memory-mapped postings ~30-50 MB more (large folios, see assistant.npyfile). ``TermTable`` keeps
the same lookups as sorted 64-bit hashes (12 bytes a term) and ``Postings`` reads a query's postings with
``pread``, adding them exactly as bm25s does, so the scores are bit-identical (tests/assistant/test_lexical.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Container, Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import Stemmer

from assistant import lean_imports
from assistant.npyfile import NpyFile
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
VOCABULARY = "vocabulary.txt"  # the decompounder's words (what generations before the term tables serve from)
TOKENS = "tokens.npz"  # BM25 token -> id (TermTable), beside a saved BM25 index
KNOWN = "known.npz"  # the decompounder's known words and stems (TermTable)

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


# Words whose split is remembered. Indexing sees each corpus word (about 130k distinct at 100k chunks) and
# gains from the memo; a serving process sees question words without end, so the memo is emptied when full
# instead of growing with every request (at most a few tens of MB).
SPLIT_CACHE = 200_000


class Decompounder:
    def __init__(self, known: Container[str]):
        """``known``: the words and stems a compound part must be (``known_words`` of the vocabulary)."""
        self.stems = known
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
        if len(self._cache) >= SPLIT_CACHE:
            self._cache.clear()
        self._cache[word] = best
        return best


def known_words(vocabulary: Iterable[str]) -> set[str]:
    """What the decompounder accepts as a part: the corpus' words of at least MIN_PART letters and their stems."""
    long = {w for w in vocabulary if len(w) >= MIN_PART}
    return long | {stem(w) for w in long}


class TermTable:
    """A read-only set of strings, each mapped to an int, held as sorted 64-bit hashes (blake2b).

    Why not a dict or set: at 100k chunks Python held ~180 bytes per term for the 124k BM25 tokens and
    143k known words of every serving process; here it is 12 bytes. Lookups are exact for the terms in the
    table (terms whose hashes collide are kept apart in ``exact``); a string outside it is taken for a term
    only if its hash equals one, with probability ~n/2⁶⁴ (about 1e-14 here).
    """

    def __init__(self, hashes: np.ndarray, values: np.ndarray, exact: Mapping[str, int] | None = None):
        self.hashes, self.values, self.exact = hashes, values, dict(exact or {})

    @classmethod
    def build(cls, terms: Mapping[str, int] | Iterable[str]) -> TermTable:
        items = terms.items() if isinstance(terms, Mapping) else ((t, 0) for t in terms)
        by_hash: dict[int, list[tuple[str, int]]] = {}
        for term, value in items:
            by_hash.setdefault(term_hash(term), []).append((term, value))
        exact = {t: v for group in by_hash.values() if len(group) > 1 for t, v in group}
        single = sorted((h, group[0][1]) for h, group in by_hash.items() if len(group) == 1)
        return cls(np.array([h for h, _ in single], dtype=np.uint64),
                   np.array([v for _, v in single], dtype=np.int32), exact)

    def get(self, term: str) -> int | None:
        if self.exact and term in self.exact:
            return self.exact[term]
        h = term_hash(term)
        at = int(np.searchsorted(self.hashes, np.uint64(h)))
        if at < len(self.hashes) and int(self.hashes[at]) == h:
            return int(self.values[at])
        return None

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.get(term) is not None

    def __len__(self) -> int:
        return len(self.hashes) + len(self.exact)

    def save(self, path: Path) -> None:
        np.savez(path, hashes=self.hashes, values=self.values,
                 exact_terms=np.array([t.encode() for t in self.exact], dtype="S"),
                 exact_values=np.array(list(self.exact.values()), dtype=np.int64))

    @classmethod
    def load(cls, path: Path) -> TermTable:
        with np.load(path) as saved:
            exact = {t.decode(): int(v) for t, v in zip(saved["exact_terms"], saved["exact_values"], strict=True)}
            return cls(saved["hashes"], saved["values"], exact)


def term_hash(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")


class Postings:
    """BM25 scores from a saved bm25s index: each query token's column of precomputed scores read with
    ``pread`` and added with ``np.add.at`` in query order, as bm25s' numpy backend adds them (so the
    float32 sums are the same). Only the vocabulary-sized pointer array is held in memory."""

    def __init__(self, folder: Path):
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        self.size = int(params["num_docs"])
        self.dtype = np.dtype(params.get("dtype", "float32"))
        self.indptr = np.load(folder / "indptr.csc.index.npy")
        self.data = NpyFile(folder / "data.csc.index.npy")
        self.indices = NpyFile(folder / "indices.csc.index.npy")
        nonoccurrence = folder / "nonoccurrence_array.index.npy"  # only for BM25L/BM25+; we index Lucene BM25
        self.nonoccurrence = np.load(nonoccurrence) if nonoccurrence.exists() else None

    def scores(self, token_ids: list[int]) -> np.ndarray:
        scores = np.zeros(self.size, dtype=self.dtype)
        for t in token_ids:
            start, end = int(self.indptr[t]), int(self.indptr[t + 1])
            np.add.at(scores, self.indices.read(start, end - start), self.data.read(start, end - start))
        if self.nonoccurrence is not None and token_ids:
            scores += self.nonoccurrence[token_ids].sum()
        return scores


class LexicalIndex:
    """BM25 over stems and compound parts; ``search`` returns (position, score) best first. Built in memory
    at index time; ``load`` serves a saved one from its term tables and ``pread`` postings."""

    def __init__(self, texts: list[str]):
        self.size = len(texts)
        # only words the decompounder can use; saved beside the BM25 index so serving needs no chunk text
        self.vocabulary = {w for t in texts for w in words(t) if w not in STOPWORDS and len(w) >= MIN_PART}
        self.decompounder = Decompounder(known_words(self.vocabulary))
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        corpus = [self.tokens(t) for t in texts]
        self.bm25.index([c or ["∅"] for c in corpus], show_progress=False)
        self.postings: Postings | None = None

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False)
        TermTable.build(self.bm25.vocab_dict).save(folder / TOKENS)
        TermTable.build(self.decompounder.stems).save(folder / KNOWN)
        # still written: app processes of the previous release, serving the same index during a rolling
        # upgrade, open a new generation with it
        (folder / VOCABULARY).write_text("\n".join(sorted(self.vocabulary)), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """A saved index for serving: the same scores, with only vocabulary-sized arrays in memory."""
        self = cls.__new__(cls)
        self.bm25 = None
        self.postings = Postings(folder)
        self.size = self.postings.size
        if (folder / TOKENS).exists():
            self.token_ids = TermTable.load(folder / TOKENS)
            known = TermTable.load(folder / KNOWN)
        else:  # a generation written before the term tables: build them from bm25s' vocabulary and ours
            vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
            self.token_ids = TermTable.build(vocab)
            vocabulary = set((folder / VOCABULARY).read_text(encoding="utf-8").split("\n")) - {""}
            known = TermTable.build(known_words(vocabulary))
        self.decompounder = Decompounder(known)
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
        if self.postings is None:  # built in memory (index time, tools)
            return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)
        ids = [i for i in map(self.token_ids.get, tokens) if i is not None]  # bm25s drops unknown tokens too
        return np.asarray(self.postings.scores(ids), dtype=np.float32)

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        return top_positive(self.scores(query), n)


def top_positive(scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """(position, score) of the n best scores above zero, best first."""
    top = np.argsort(-scores, kind="stable")[:n]
    return [(int(i), float(scores[i])) for i in top if scores[i] > 0]


@lru_cache(maxsize=200_000)
def _stem_cached(word: str) -> str:
    return stem(word)
