"""Sentence-transformers wrapper with the right query/passage prefixes, usable by Chroma and LangChain."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.settings import DEFAULT_MODEL, Settings

# Never reach for the hub at run time: a missing model should fail at once, not after ~75 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _is_e5(name: str) -> bool:
    return "e5" in Path(name).name.lower() or name == DEFAULT_MODEL


class Embedder(Embeddings):
    """Normalised embeddings; passages and queries get their own prefix (e5: "passage: " / "query: ")."""

    def __init__(self, model, name: str, query_prefix: str, passage_prefix: str, batch_size: int = 32):
        self.model = model
        self.name = name
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size
        self._lock = threading.Lock()  # torch on 2 cores: concurrent encodes only thrash

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 512)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def fingerprint(self) -> str:
        """What must match for stored vectors to be comparable with new ones."""
        return f"{self.name}|{self.query_prefix!r}|{self.passage_prefix!r}|{self.dimension}"

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for a passage, prefix and special tokens included."""
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


def resolve_model_path(settings: Settings) -> str:
    if settings.model == DEFAULT_MODEL:
        from assistant.embeddings.e5_offline import build_model_dir

        return str(build_model_dir(settings.model_cache))
    return settings.model  # a sentence-transformers name (needs the internet once) or a local path


@lru_cache(maxsize=4)
def _load(model: str, cache: Path, query_prefix: str | None, passage_prefix: str | None, batch: int) -> Embedder:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keeps the CLI's own progress output readable
    settings = Settings(model=model, home=cache.parent)
    path = resolve_model_path(settings)
    st = SentenceTransformer(path, device="cpu")
    e5 = _is_e5(model)
    qp = query_prefix if query_prefix is not None else ("query: " if e5 else "")
    pp = passage_prefix if passage_prefix is not None else ("passage: " if e5 else "")
    return Embedder(st, name=model, query_prefix=qp, passage_prefix=pp, batch_size=batch)


def load_embedder(settings: Settings) -> Embedder:
    """One loaded model per process and configuration: the CLI batch, UI and eval share it."""
    return _load(
        settings.model, settings.model_cache, settings.query_prefix, settings.passage_prefix,
        settings.embed_batch_size,
    )
