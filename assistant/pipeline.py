"""The core the CLI, the chat UI and the evaluation share: index, search, ask."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from assistant import answer as extractive
from assistant.embeddings import Embedder, load_embedder
from assistant.indexer import Progress, build_index, current_generation, current_name
from assistant.retrieval import IndexMismatchError, LoadedIndex, Retriever
from assistant.settings import Settings
from assistant.text import looks_english, words
from assistant.types import Answer, Hit, IndexReport

# Follow-ups that lean on the conversation ("och om det är en ideell förening?").
_ELLIPTIC_START = re.compile(
    r"^\s*(och|men|samt|också|även|om|vad gäller|hur är det med|gäller det|gäller detta|då|så|"
    r"and|what about|how about|also)\b",
    re.I,
)
_PRONOUNS = {"det", "detta", "den", "denna", "dessa", "de", "dem", "där", "dit", "då", "it", "this", "that",
             "they", "there"}
_TRAILING = {"också", "även", "då", "too", "also"}


def retrieval_query(question: str, history: Sequence[str]) -> str:
    """The question, joined with the previous user question when it leans on it ("Och för bygg då?").

    A follow-up is recognised by its opening ("och", "men", "vad gäller"), a pronoun among its first
    words, a trailing "också"/"då", or being one or two words long. Anything else stands alone, so a new
    topic is not dragged towards the old one."""
    if not history:
        return question
    tokens = words(question)
    elliptic = (
        _ELLIPTIC_START.match(question) is not None
        or len(tokens) <= 2
        or bool(_PRONOUNS & set(tokens[:4]))
        or (bool(tokens) and tokens[-1] in _TRAILING)
    )
    return f"{history[-1]} {question}" if elliptic else question


class Assistant:
    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None):
        self.settings = settings or Settings.from_env()
        self._embedder = embedder
        self._index: LoadedIndex | None = None
        self._retriever: Retriever | None = None
        self._lock = threading.Lock()
        self._documents: tuple[str, dict[str, dict]] | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    # --- indexing ------------------------------------------------------------------------------

    def index(self, progress: Progress | None = None) -> IndexReport:
        report = build_index(self.settings, self.embedder, progress)
        with self._lock:
            self._index = self._retriever = None  # next request opens the new generation
        return report

    def needs_index(self) -> bool:
        try:
            _ = self.retriever
        except Exception:
            return True
        return False

    # --- serving -------------------------------------------------------------------------------

    @property
    def retriever(self) -> Retriever:
        """The retriever over the served generation, reopened when another process re-indexed."""
        with self._lock:
            current = current_name(self.settings.index_dir)
            if self._index is not None and current is not None and current != self._index.name:
                self._index = self._retriever = None
            if self._retriever is None:
                self._index = LoadedIndex.open(self.settings, self.embedder)
                self._retriever = Retriever(self._index, self.embedder, self.settings)
            return self._retriever

    @property
    def loaded_index(self) -> LoadedIndex:
        return self.retriever.index

    def documents(self) -> dict[str, dict]:
        """The served generation's documents (manifest entries by key), read without loading the index:
        the chat and the API list and serve documents without paying for a model or vectors."""
        name = current_name(self.settings.index_dir)
        if name is None:
            return {}
        cached = self._documents
        if cached is None or cached[0] != name:
            generation = current_generation(self.settings.index_dir)
            cached = self._documents = (name, generation.files if generation else {})
        return cached[1]

    def search(self, question: str, k: int | None = None, history: Sequence[str] = (),
               mode: str | None = None) -> tuple[list[Hit], dict[str, float]]:
        t = time.perf_counter()
        result = self.retriever.search(retrieval_query(question, history), k=k, mode=mode)
        result.timings_ms["total"] = (time.perf_counter() - t) * 1000
        return result.hits, result.timings_ms

    def ask(self, question: str, history: Sequence[str] = ()) -> Answer:
        t0 = time.perf_counter()
        question = question.strip()
        limit = self.settings.max_question_chars
        if len(question) > limit:
            return self.too_long(question)
        history = [h[:limit] for h in history]  # earlier questions were held to the same limit
        query = retrieval_query(question, history)
        # One retriever for the whole question: sentence rows and hits must come from the same index
        # generation even if a re-index switches generations meanwhile (and CURRENT is read once).
        retriever = self.retriever
        result = retriever.search(query, k=self.settings.top_k)
        timings = dict(result.timings_ms)
        timings["retrieve"] = (time.perf_counter() - t0) * 1000
        hits = result.hits
        t1 = time.perf_counter()
        answer = self._answer(question, query, list(history), hits, result.sentence_sims, retriever.index)
        timings["answer"] = (time.perf_counter() - t1) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        answer.timings_ms = timings
        answer.retrieval_query = query
        return answer

    def too_long(self, question: str) -> Answer:
        """A refusal, before any retrieval, of a question over ``settings.max_question_chars``."""
        reason = (f"Frågan är för lång ({len(question)} tecken; högst {self.settings.max_question_chars}). "
                  "Korta ner den till det du vill veta och fråga igen.")
        return Answer(question, reason, True, [], "extractive", reason=reason)

    def is_relevant(self, query: str, hits: list[Hit], index: LoadedIndex) -> bool:
        """The calibrated refusal rule (see Settings.min_relevance and max_novelty)."""
        if not hits:
            return False
        if looks_english(query):
            # Across languages cosines run lower and Swedish word statistics say nothing.
            return (hits[0].dense or 0.0) >= self.settings.min_relevance_crosslingual
        if (hits[0].dense or 0.0) < self.settings.min_relevance:
            return False
        return index.lexical.novelty(query) <= self.settings.max_novelty

    def _refuse(self, question: str, hits: list[Hit], mode: str, reason: str = "") -> Answer:
        nearest = hits[:3]
        return Answer(question, extractive.refusal_text(nearest, reason), True, [], mode, nearest=nearest,
                      reason=reason)

    def _answer(self, question: str, query: str, history: list[str], hits: list[Hit], sentence_sims,
                index: LoadedIndex) -> Answer:
        if not question or not self.is_relevant(query, hits, index):
            return self._refuse(question, hits, "extractive")
        if self.settings.llm_provider:
            from assistant import llm

            try:
                text = llm.generate(self.settings, question, hits, history)
                shown, citations, refused = llm.ground(text, hits)
                if refused:
                    return self._refuse(question, hits, "llm")
                if citations:
                    return Answer(question, shown, False, citations, "llm", nearest=[])
            except llm.LLMError:
                pass  # fall through to the extractive answer: a broken LLM must not break answers
        n, vectors = self.settings.answer_sentences, index.sentence_vectors
        kind = extractive.asked_number(question)
        # A number question may borrow a sentence from any retrieved passage (with_asked_number): score
        # them all once; the answer itself is chosen from the top passages' share.
        weights = extractive.SentenceWeights()
        passages = len(hits) if kind else weights.max_passages
        wider = extractive.score_sentences(query, hits, index, sentence_sims, replace(weights, max_passages=passages))
        top = {h.chunk.id for h in hits[: weights.max_passages]}
        chosen = extractive.select([s for s in wider if s.hit.chunk.id in top], n, vectors)
        if chosen and kind:
            chosen = extractive.with_asked_number(kind, chosen, wider, n, vectors)
            if not chosen:
                return self._refuse(question, hits, "extractive", extractive.MISSING_NUMBER[kind])
        if not chosen:
            return self._refuse(question, hits, "extractive")
        text, citations = extractive.compose(chosen)
        return Answer(question, text, False, citations, "extractive")


__all__ = ["Assistant", "IndexMismatchError", "retrieval_query"]
