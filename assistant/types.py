"""Typed data passed between the pipeline stages: load → chunk → embed/store → retrieve → answer → cite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from assistant.text import without_source_notes

DATE_FIELDS = ("valid_as_of", "last_checked", "valid_until")  # the front matter's dates, see corpus/README.md


def document_key(corpus_dir: str | Path, source: str) -> str:
    """A document's key in the index manifest: two corpus folders may hold the same relative path."""
    return f"{corpus_dir}::{source}"


def chunk_count(entry: Mapping[str, Any]) -> int:
    """How many chunks a manifest entry's document has: ``chunks``, or the length of the id list that
    manifests written before it held (the ids themselves are in the generation's chunk_ids.npy)."""
    if "chunks" in entry:
        return int(entry["chunks"])
    return len(entry.get("chunk_ids") or ())


def location(title: str, section: str, page: int | None, source: str | None = None) -> str:
    """Where a passage stands, as every listing writes it: "title – section, s. N (source)"."""
    where = " – ".join(p for p in (title, section) if p) + (f", s. {page}" if page else "")
    return f"{where} ({source})" if source else where


def dates(metadata: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The document dates in front matter (ISO strings; None when absent), as keyword arguments."""
    meta = metadata or {}
    return {name: None if meta.get(name) in (None, "") else str(meta[name]) for name in DATE_FIELDS}


class Dated(Protocol):
    """Anything carrying a document's dates: Document, a Passage (Citation, NearestPassage)."""

    valid_as_of: str | None
    last_checked: str | None
    valid_until: str | None


@dataclass(frozen=True)
class Block:
    """One paragraph-sized piece of a loaded document, with where it sits."""

    text: str
    section: str  # heading path, "Kapitel > Avsnitt"; "" when the format has none
    page: int | None = None  # 1-based PDF page; None for formats without pages


@dataclass
class SourceDocument:
    """A file read from a corpus folder."""

    corpus_dir: Path
    source: str  # path relative to corpus_dir, with forward slashes
    title: str
    sha256: str
    blocks: list[Block]
    metadata: dict[str, Any] = field(default_factory=dict)  # YAML front matter, flattened to scalars

    @property
    def key(self) -> str:
        """Unique across corpus folders: two folders may hold the same relative path."""
        return document_key(self.corpus_dir.resolve(), self.source)


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage: consecutive blocks of one section, never a cut sentence."""

    id: str
    text: str
    source: str
    corpus_dir: str
    title: str
    section: str
    page: int | None
    position: int  # order within its document
    metadata: dict[str, Any] = field(default_factory=dict)

    def embedding_text(self) -> str:
        """What the models see (embeddings, bm25): the title and section give a short passage its context;
        source notes are left out (:func:`assistant.text.without_source_notes`)."""
        head = " > ".join(p for p in (self.title, self.section) if p)
        text = without_source_notes(self.text)
        return f"{head}\n{text}" if head else text

    def location(self, with_source: bool = True) -> str:
        return location(self.title, self.section, self.page, self.source if with_source else None)


@dataclass
class Hit:
    """A retrieved chunk with its fused score and the per-retriever evidence behind it."""

    chunk: Chunk
    score: float  # final ranking score (fused); higher is better
    rank: int = 0
    dense: float | None = None  # cosine similarity to the question, when dense search saw it
    lexical: float | None = None  # BM25 score, when lexical search saw it

    def to_json(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "source": c.source,
            "title": c.title,
            "section": c.section,
            "page": c.page,
            "text": c.text,
        }


def search_json(id: Any, question: str, hits: list[Hit], timings_ms: dict[str, float]) -> dict[str, Any]:
    """One search as JSON: `assistant search --json` and the HTTP API write exactly this."""
    return {
        "id": id,
        "question": question,
        "hits": [h.to_json() for h in hits],
        "timings_ms": {k: round(v, 2) for k, v in timings_ms.items()},
    }


@dataclass(frozen=True)
class Document:
    """An indexed document as the index manifest lists it (no vectors, no chunks)."""

    corpus_dir: str  # resolved
    source: str
    title: str
    chunks: int = 0  # passages in the index
    valid_as_of: str | None = None
    last_checked: str | None = None
    valid_until: str | None = None

    @property
    def key(self) -> str:
        return document_key(self.corpus_dir, self.source)

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> Document:
        return cls(corpus_dir=entry.get("corpus_dir", ""), source=entry.get("source", ""),
                   title=entry.get("title", ""), chunks=chunk_count(entry),
                   **dates(entry.get("metadata")))


@dataclass(frozen=True)
class Passage:
    """A numbered passage put before a reader, a citation or one a refusal offers: where it stands and its
    document's dates, taken from a hit the same way for both. Only the numbering and location are
    positional, so a subclass's own field follows them (``Citation(1, "a.md", "A", "", None, "Citat.")``)."""

    n: int
    source: str
    title: str
    section: str
    page: int | None
    _: KW_ONLY
    corpus_dir: str = ""
    valid_as_of: str | None = None
    last_checked: str | None = None
    valid_until: str | None = None

    @classmethod
    def _of_hit(cls, n: int, hit: Hit, *args: Any, **kwargs: Any) -> Self:
        c = hit.chunk
        return cls(n, c.source, c.title, c.section, c.page, *args, corpus_dir=c.corpus_dir, **dates(c.metadata),
                   **kwargs)

    def location(self, with_source: bool = True) -> str:
        return location(self.title, self.section, self.page, self.source if with_source else None)

    def to_json(self) -> dict[str, Any]:
        """Which passage, as the API, `--json` and the stored feedback write it."""
        return {"n": self.n, "source": self.source, "title": self.title, "section": self.section,
                "page": self.page}


@dataclass(frozen=True)
class Citation(Passage):
    quote: str  # appears verbatim (whitespace-normalised) in the source document
    context: str = field(default="", kw_only=True)  # the chunk the quote was taken from, for display

    @classmethod
    def from_hit(cls, n: int, hit: Hit, quote: str) -> Citation:
        return cls._of_hit(n, hit, quote, context=hit.chunk.text)

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"quote": self.quote}


@dataclass(frozen=True)
class NearestPassage(Passage):
    """A passage offered instead of an answer (a refusal's nearest hits), with its document's dates."""

    text: str

    @classmethod
    def from_hit(cls, n: int, hit: Hit) -> NearestPassage:
        return cls._of_hit(n, hit, hit.chunk.text)


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    mode: str  # "extractive" or "llm"
    nearest: list[Hit] = field(default_factory=list)  # offered instead when abstaining
    reason: str = ""  # why it abstained, when more specific than "the documents do not say"
    notice: str = ""  # something the reader should know about how the answer was made (an LLM fell back)
    confidence: float = 0.0  # the relevance model's P(the best sentence answers); 0 without one
    timings_ms: dict[str, float] = field(default_factory=dict)
    retrieval_query: str = ""

    def nearest_passages(self) -> list[NearestPassage]:
        """The passages offered instead of an answer, numbered from 1 (none when it answered)."""
        return [NearestPassage.from_hit(i, h) for i, h in enumerate(self.nearest if self.abstained else [], 1)]

    def to_json(self, id: Any = None) -> dict[str, Any]:
        return {
            "id": id,
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "mode": self.mode,
            "nearest": [h.to_json() for h in self.nearest],
            "reason": self.reason,
            "notice": self.notice,
            "confidence": round(self.confidence, 4),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass
class SkippedFile:
    source: str
    reason: str


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks: int = 0  # chunks in the index after the build
    chunks_embedded: int = 0  # chunks embedded by this build
    seconds: float = 0.0
    rebuilt: bool = False  # a full rebuild (new model or chunking settings)

    def summary(self) -> str:
        return (
            f"tillagda {len(self.added)}, uppdaterade {len(self.updated)}, "
            f"oförändrade {len(self.unchanged)}, borttagna {len(self.removed)}, "
            f"överhoppade {len(self.skipped)}; {self.chunks} avsnitt i indexet "
            f"({self.chunks_embedded} nya inbäddningar), {self.seconds:.1f} s"
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = [asdict(s) for s in self.skipped]
        return d
