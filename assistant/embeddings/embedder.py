"""The embedding model with the right query/passage prefixes, usable by Chroma and LangChain.

Two engines run the same model (``Settings.engine``):

* ``onnx`` (default) / ``onnx-int8``: the lean engine of ``onnx_engine`` (ONNX Runtime + the Rust
  tokenizer, exported once from the model folder); nothing of torch, transformers or
  sentence-transformers is imported, so a new process answers in about a second;
* ``torch``: sentence-transformers, the reference. Models the lean engine cannot run (a hub name, a
  folder with modules beyond Transformer/Pooling/Normalize) always use it.

The engine is part of the fingerprint: an index built by one engine is rebuilt, never mixed, by another.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from assistant.settings import DEFAULT_MODEL, Settings

# Never reach for the hub at run time: a missing model should fail at once, not after ~75 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)


def _is_e5(name: str) -> bool:
    return "e5" in Path(name).name.lower() or name == DEFAULT_MODEL


@runtime_checkable
class TextEmbedder(Protocol):
    """What indexing, the store and retrieval call on an embedder; ``Embedder`` is the model-backed one (a
    real model, or the hashing stand-in of ``assistant.embeddings.fake`` for the fast tests)."""

    name: str
    batch_size: int

    @property
    def fingerprint(self) -> str:
        """Equal for two embedders exactly when their vectors are comparable (kept in the index config)."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for a passage (the chunker's budget)."""
        ...

    def embed_passages(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


class Embedder:
    """Normalised embeddings; passages and queries get their own prefix (e5: "passage: " / "query: ").

    ``model`` is a SentenceTransformer (engine "torch") or an ``onnx_engine.OnnxEncoder``; both offer
    ``encode(texts, batch_size=, normalize_embeddings=)``, ``max_seq_length`` and
    ``get_embedding_dimension()``. It has LangChain's ``Embeddings`` methods (embed_documents, embed_query
    and their async forms) without subclassing it: importing langchain_core would cost the CLI 0.1-0.4 s."""

    def __init__(self, model: Any, name: str, query_prefix: str, passage_prefix: str, batch_size: int = 32):
        self.model = model
        self.name = name
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size
        self._lock = threading.Lock()  # 2 cores: concurrent encodes only thrash

    @property
    def engine(self) -> str:
        return getattr(self.model, "engine", "torch")

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 512)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def fingerprint(self) -> str:
        """What must match for stored vectors to be comparable with new ones (the engine too: int8 vectors
        differ from fp32 ones by up to a few per mille)."""
        return f"{self.name}|{self.query_prefix!r}|{self.passage_prefix!r}|{self.dimension}|{self.engine}"

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for a passage, prefix and special tokens included."""
        if hasattr(self.model, "count_tokens"):
            return self.model.count_tokens(self.passage_prefix + text)
        ids = self.model.tokenizer(self.passage_prefix + text, add_special_tokens=True, verbose=False)["input_ids"]
        return len(ids)

    def _encode(self, texts: list[str], prefix: str, show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                [prefix + t for t in texts],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return vectors.astype(np.float32)

    def embed_passages(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        return self._encode(list(texts), self.passage_prefix, show_progress)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), self.query_prefix)

    # LangChain Embeddings interface (used by the LangChain baseline and vector-store helpers)
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def resolve_model_path(settings: Settings) -> str:
    if settings.model == DEFAULT_MODEL:
        from assistant.embeddings.e5_offline import build_model_dir

        return str(build_model_dir(settings.model_cache))
    return settings.model  # a sentence-transformers name (needs the internet once) or a local path


def _default_export_dir(settings: Settings) -> Path:
    from assistant.embeddings import e5_offline, onnx_engine

    # Beside the model folder, not in it: the folder stays as e5_offline builds and verifies it.
    return settings.model_cache / onnx_engine.EXPORT_DIR / e5_offline.model_dir(settings.model_cache).name


def prefetch_tokenizer(settings: Settings) -> None:
    """Begin loading the default model's tokenizer in the background (see spm_tokenizer.prefetch): called
    by the CLI before its heavy imports. Does nothing for other models or before the first export."""
    if settings.model == DEFAULT_MODEL and settings.engine != "torch":
        from assistant.embeddings import spm_tokenizer

        spm_tokenizer.prefetch(_default_export_dir(settings))


def prefetch(settings: Settings) -> None:
    """Begin loading the default model (its ONNX session opens in C++ without the GIL) in a background
    thread: called by the CLI before its heavy imports; ``load_embedder`` then takes it. Does nothing for
    other models or before the first export (minutes, in the foreground where its progress shows)."""
    if settings.model != DEFAULT_MODEL or settings.engine == "torch":
        return
    from assistant.embeddings import e5_offline, onnx_engine

    if onnx_engine.is_current(e5_offline.model_dir(settings.model_cache), "encoder", _default_export_dir(settings)):
        # not a daemon: the interpreter waits for it at exit instead of stopping it inside ONNX Runtime
        threading.Thread(target=_prefetch, args=(settings,), name="embedder-prefetch").start()


def _prefetch(settings: Settings) -> None:
    try:
        load_embedder(settings)
    except BaseException as exc:  # the caller's own load reports it
        log.debug("prefetch of the embedding model failed: %s", exc)


def _lean_encoder(settings: Settings, engine: str):
    """The ONNX encoder for the configured model; raises onnx_engine.NotExportableError when it has none."""
    from assistant.embeddings import onnx_engine

    if settings.model == DEFAULT_MODEL:
        from assistant.embeddings import e5_offline

        folder = e5_offline.model_dir(settings.model_cache)
        out = _default_export_dir(settings)
        # A current export was made from these very weights: skip hashing them (0.3 s) at every start.
        if not onnx_engine.is_current(folder, "encoder", out):
            folder = e5_offline.build_model_dir(settings.model_cache)
        return onnx_engine.OnnxEncoder(onnx_engine.ensure_exported(folder, "encoder", out=out), engine)
    folder = Path(settings.model).expanduser()
    if not folder.is_dir():
        raise onnx_engine.NotExportableError(f"{settings.model} is not a local folder")
    return onnx_engine.load_encoder(folder, engine, cache=settings.model_cache)


def _torch_encoder(settings: Settings):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keeps the CLI's own progress output readable
    return SentenceTransformer(resolve_model_path(settings), device="cpu")


@lru_cache(maxsize=4)
def _load(model: str, cache: Path, query_prefix: str | None, passage_prefix: str | None, batch: int,
          engine: str = "onnx") -> Embedder:
    settings = Settings(model=model, home=cache.parent, engine=engine)
    backend = None
    if engine != "torch":
        from assistant.embeddings.onnx_engine import NotExportableError

        try:
            backend = _lean_encoder(settings, engine)
        except NotExportableError as exc:
            log.info("%s runs on torch: %s", model, exc)
    if backend is None:
        backend = _torch_encoder(settings)
    e5 = _is_e5(model)
    qp = query_prefix if query_prefix is not None else ("query: " if e5 else "")
    pp = passage_prefix if passage_prefix is not None else ("passage: " if e5 else "")
    return Embedder(backend, name=model, query_prefix=qp, passage_prefix=pp, batch_size=batch)


_LOAD_LOCK = threading.Lock()  # a prefetch and the caller load one model, not two


def load_embedder(settings: Settings) -> Embedder:
    """One loaded model per process and configuration: the CLI batch, UI and eval share it."""
    with _LOAD_LOCK:
        return _load(
            settings.model, settings.model_cache, settings.query_prefix, settings.passage_prefix,
            settings.embed_batch_size, settings.engine,
        )
