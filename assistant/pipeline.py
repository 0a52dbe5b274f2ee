"""The core the CLI, the chat UI and the evaluation share: index, search, ask."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from assistant import answer as extractive
from assistant import loaders, policy
from assistant.answer import REFUSAL_HINT
from assistant.embeddings import TextEmbedder, load_embedder
from assistant.indexer import (
    IndexBuildError,
    NoIndexError,
    Progress,
    build_index,
    check_server,
    current_generation,
    current_name,
)
from assistant.retrieval import IndexMismatchError, LoadedIndex, Retriever
from assistant.settings import Settings
from assistant.store import ChromaServerError, CollectionMissingError, check_reachable
from assistant.text import words
from assistant.types import Answer, Document, Hit, IndexReport, SkippedFile

log = logging.getLogger(__name__)

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
    """The question, followed by the previous user question when it leans on it ("Och för bygg då?").

    A follow-up is recognised by its opening ("och", "men", "vad gäller"), a pronoun among its first
    words, a trailing "också"/"då", or being one or two words long. Anything else stands alone, so a new
    topic is not dragged towards the old one. The follow-up comes first because the relevance model
    answers the question it reads first (and keeps only the first 48 tokens): with the previous question
    first, four of the eval set's six follow-ups were led by the answer to the previous question
    (2026-12-03; eval key facts 0.824 → 0.832, nDCG@10 0.773 → 0.777; the other sets have no history)."""
    if not history:
        return question
    tokens = words(question)
    elliptic = (
        _ELLIPTIC_START.match(question) is not None
        or len(tokens) <= 2
        or bool(_PRONOUNS & set(tokens[:4]))
        or (bool(tokens) and tokens[-1] in _TRAILING)
    )
    return f"{question} {history[-1]}" if elliptic else question


class Assistant:
    def __init__(self, settings: Settings | None = None, embedder: TextEmbedder | None = None,
                 relevance: policy.SentenceScorer | None = None):
        self.settings = settings or Settings.from_env()
        self._embedder = embedder
        self._index: LoadedIndex | None = None
        self._retriever: Retriever | None = None
        self._lock = threading.Lock()
        self._documents: tuple[str, list[Document]] | None = None
        self._relevance = relevance  # None: the learned model, loaded on first use

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    # --- indexing ------------------------------------------------------------------------------

    def index(self, progress: Progress | None = None) -> IndexReport:
        if self._embedder is None:
            # an unusable Chroma server stops the build before the model loads: no seconds lost, and no
            # ONNX session alive in a process that then exits with an error (its thread pool once aborted
            # such an exit: "terminate called without an active exception")
            check_server(self.settings)
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

    def generation(self) -> str | None:
        """Name of the served index generation, None before the first build (one small file read)."""
        return current_name(self.settings.index_dir)

    def check_store(self, generation: str | None = None) -> None:
        """Raise ChromaServerError when the Chroma server of ``ASSISTANT_CHROMA_URL`` does not answer or refuses
        the token now, CollectionMissingError when it answers without the served generation's collection (two
        small requests, no model, no index opened); nothing to check for an embedded index. ``generation``:
        the name the caller already read (the health check reports it), else CURRENT is read here."""
        if self.settings.chroma_url:
            name = generation or self.generation()  # the CURRENT file only: a health poll parses no manifest
            check_reachable(self.settings, self.settings.index_dir / name if name else None)

    def documents(self) -> list[Document]:
        """The served generation's documents, read from its manifest without loading the index: the chat
        and the API list and serve documents without paying for a model or vectors."""
        name = self.generation()
        if name is None:
            return []
        cached = self._documents
        if cached is None or cached[0] != name:
            generation = current_generation(self.settings.index_dir)
            files = generation.files.values() if generation else ()
            cached = self._documents = (name, [Document.from_manifest(e) for e in files])
        return list(cached[1])

    # --- the relevance model --------------------------------------------------------------------

    @property
    def relevance(self) -> policy.SentenceScorer:
        """The learned Swedish relevance model (assistant.crossencoder), loaded on first use, unless the
        constructor was given another scorer (the fast tests' stand-in)."""
        if self._relevance is None:
            with self._lock:
                if self._relevance is None:
                    from assistant.relevance import load_relevance_model

                    self._relevance = load_relevance_model(self.settings)
        return self._relevance

    def _judge(self, query: str, hits: list[Hit],
               timings: dict[str, float]) -> tuple[list[Hit], list[policy.Candidate]]:
        """The model reads the candidate sentences of the top passages; the passages are reordered by it."""
        t = time.perf_counter()
        candidates = self.scored_candidates(query, hits)
        timings["relevance"] = (time.perf_counter() - t) * 1000
        return policy.rerank(hits, candidates), candidates

    def scored_candidates(self, query: str, hits: Sequence[Hit], passages: int | None = None,
                          max_pairs: int | None = None) -> list[policy.Candidate]:
        """The candidate sentences of the top passages, each scored by the relevance model (the tuning
        benchmarks ask for more passages and pairs than the policy reads)."""
        candidates = policy.candidates(hits, passages=passages, max_pairs=max_pairs)
        if candidates:
            for c, p in zip(candidates, self.relevance.score(query, candidates), strict=True):
                c.score = float(p)
        return candidates

    # --- serving -------------------------------------------------------------------------------

    def search(self, question: str, k: int | None = None, history: Sequence[str] = (),
               mode: str | None = None) -> tuple[list[Hit], dict[str, float]]:
        t = time.perf_counter()
        k = k or self.settings.top_k
        query = retrieval_query(question, history)
        result = self.retriever.search(query, k=max(k, policy.PASSAGES + policy.READ_EXTRA), mode=mode)
        hits, _ = self._judge(query, result.hits, result.timings_ms)
        result.timings_ms["total"] = (time.perf_counter() - t) * 1000
        return hits[:k], result.timings_ms

    def ask(self, question: str, history: Sequence[str] = ()) -> Answer:
        return self.ask_ranked(question, history)[0]

    def ask_ranked(self, question: str, history: Sequence[str] = (),
                   k: int | None = None) -> tuple[Answer, list[Hit]]:
        """``ask``, and the top ``k`` passages in the order the relevance model left them: the evaluation
        scores the ranking of the very retrieval that answered, so each question is retrieved and read by
        the model once. The policy reads the same passages whatever ``k`` is: up to ``settings.candidates``
        the fused order's head does not depend on how many follow it, so neither does the answer.
        No passages when the question was refused before any search (empty or too long)."""
        t0 = time.perf_counter()
        question = question.strip()
        limit = self.settings.max_question_chars
        if len(question) > limit:
            return self.too_long(question), []
        history = [h[:limit] for h in history]  # earlier questions were held to the same limit
        query = retrieval_query(question, history)
        if not question:
            return self._refuse(question, [], "extractive"), []
        read = max(self.settings.top_k, policy.PASSAGES + policy.READ_EXTRA)  # what the answer may draw on
        k = k or read
        # One retriever for the whole question: all hits come from the same index generation even if a
        # re-index switches generations meanwhile (and CURRENT is read once).
        result = self.retriever.search(query, k=max(k, read))
        timings = dict(result.timings_ms)
        hits, candidates = self._judge(query, result.hits, timings)
        timings["retrieve"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        decision = policy.decide(hits[:read], candidates, question)
        answer = self._answer(question, list(history), decision)
        timings["answer"] = (time.perf_counter() - t1) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        answer.timings_ms = timings
        answer.retrieval_query = query
        answer.confidence = decision.best
        return answer, hits[:k]

    def too_long(self, question: str) -> Answer:
        """A refusal, before any retrieval, of a question over ``settings.max_question_chars``."""
        reason = (f"Frågan är för lång ({len(question)} tecken; högst {self.settings.max_question_chars}). "
                  "Korta ner den till det du vill veta och fråga igen.")
        return Answer(question, reason, True, [], "extractive", reason=reason)

    def _refuse(self, question: str, hits: list[Hit], mode: str, reason: str = "", notice: str = "") -> Answer:
        nearest = hits[:3]
        return Answer(question, extractive.refusal_text(nearest, reason), True, [], mode, nearest=nearest,
                      reason=reason, notice=notice)

    def _answer(self, question: str, history: list[str], decision: policy.Decision) -> Answer:
        """The policy's decision as an answer: quoted sentences, or an LLM's wording of the passages."""
        hits = decision.hits
        if not decision.answer:
            return self._refuse(question, hits, "extractive", decision.reason)
        notice = ""
        if self.settings.llm_provider:
            from assistant import llm

            try:
                text = llm.generate(self.settings, question, hits[: self.settings.top_k], history)
                shown, citations, refused = llm.ground(text, hits[: self.settings.top_k])
                if refused:
                    return self._refuse(question, hits, "llm")
                if citations:
                    return Answer(question, shown, False, citations, "llm")
                notice = LLM_UNCITED
                log.warning("the LLM answer cited no passage; the quoted sentences are shown instead")
            except llm.LLMError as exc:
                # a broken LLM must not break answers, but nobody should think it is working: a warning in
                # the log for whoever runs it, a notice under the answer for whoever reads it
                notice = LLM_FAILED
                log.warning("LLM (%s at %s) failed, the quoted sentences are shown instead: %s",
                            self.settings.llm_provider, self.settings.llm_base_url or "its default address", exc)
        text, citations = extractive.compose(decision.sentences)
        return Answer(question, text, False, citations, "extractive", notice=notice)


LLM_FAILED = "Språkmodellen kunde inte nås, så svaret består av citat ur dokumenten i stället."
LLM_UNCITED = ("Språkmodellens svar hänvisade inte till underlaget och visas därför inte; här är de citerade "
               "meningarna i stället.")


# --- the corpus folders, for the UI's admin tab and document view (no index needed) ------------------


CorpusScan = Mapping[int, loaders.Discovery]  # scan_corpus: what each corpus folder held, by its number


def scan_corpus(settings: Settings) -> CorpusScan:
    """What each existing corpus folder holds now, by its number in settings.corpus_dirs: the indexable
    files, sorted (symbolic links left out), and what discovery refused. One walk per folder, which the
    admin view's list of files and its check for unindexed ones share."""
    return {i: loaders.scan(folder.resolve()) for i, folder in enumerate(settings.corpus_dirs) if folder.is_dir()}


def ignored_name(name: str) -> bool:
    """A file name the indexer never reads (README, LICENSE: notes for humans about a corpus)."""
    return name.lower() in loaders.IGNORED_NAMES


def unindexed(settings: Settings, documents: Iterable[Document],
              scanned: CorpusScan | None = None) -> list[SkippedFile]:
    """Corpus files missing from ``documents`` (the served index), with the reason when the loader gives
    one, and what discovery refused (symbolic links, unusable names) with its reason. ``scanned``: a
    ``scan_corpus`` of now, when the caller has one."""
    indexed = {(str(Path(d.corpus_dir).resolve()), d.source) for d in documents}
    limits = loaders.Limits.from_settings(settings)
    out = []
    for found in (scan_corpus(settings) if scanned is None else scanned).values():
        for file in found.files:
            if (str(file.corpus_dir), file.source) in indexed:
                continue
            try:
                loaders.load(file, limits)
                reason = "inte indexerad än – indexera om"
            except loaders.LoadError as exc:
                reason = str(exc)
            out.append(SkippedFile(file.source, reason))
        out.extend(found.skipped)
    return out


def read_corpus_text(path: Path) -> str:
    """A text or Markdown corpus file decoded exactly as at index time, so what a reader sees is what
    was quoted (an old cp1252 file too)."""
    return loaders.decode_text(path.read_bytes())


def readable_markdown(text: str, front_matter: bool = True) -> str:
    """A Markdown corpus text with its source keys spelled out, as the index and the quotes read it; for
    the document view without its front matter (``front_matter=False``; a broken one stays, the raw text
    is still worth showing)."""
    return loaders.readable_markdown(text, front_matter)


__all__ = ["REFUSAL_HINT", "Assistant", "ChromaServerError", "CollectionMissingError", "CorpusScan", "IndexBuildError",
           "IndexMismatchError", "NoIndexError", "ignored_name", "read_corpus_text", "readable_markdown",
           "retrieval_query", "scan_corpus", "unindexed"]
