"""The persistent Chroma collection of one index generation, always with the project's own embeddings.

Chroma's default embedding function downloads a model (impossible here), so every collection is opened
with ``ProjectEmbeddingFunction`` and every add/query passes vectors we computed ourselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings as ChromaSettings

from assistant.embeddings import Embedder
from assistant.types import Chunk

COLLECTION = "samverkan"
_MAX_BATCH = 5000  # Chroma refuses more than 5,461 items per add


class ProjectEmbeddingFunction(EmbeddingFunction[Documents]):
    """Passage embeddings from our model; keeps Chroma from ever loading its downloading default."""

    def __init__(self, embedder: Embedder | None = None, model: str = ""):
        self.embedder = embedder
        self.model = embedder.name if embedder else model

    def __call__(self, input: Documents) -> Embeddings:
        if self.embedder is None:
            raise RuntimeError("no embedder attached; pass vectors explicitly")
        return list(self.embedder.embed_passages(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        if self.embedder is None:
            raise RuntimeError("no embedder attached; pass vectors explicitly")
        return list(self.embedder.embed_queries(list(input)))

    @staticmethod
    def name() -> str:
        return "samverkansassistenten"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ProjectEmbeddingFunction:
        return ProjectEmbeddingFunction(model=config.get("model", ""))

    def is_legacy(self) -> bool:
        return False


def client_for(path: Path) -> chromadb.ClientAPI:
    return chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    )


class ChunkStore:
    """Chunks and their vectors in one Chroma collection (cosine space)."""

    def __init__(self, path: Path, embedder: Embedder | None):
        self.path = path
        self.client = client_for(path)
        self.collection = self.client.get_or_create_collection(
            COLLECTION,
            embedding_function=ProjectEmbeddingFunction(embedder),
            configuration={"hnsw": {"space": "cosine"}},
        )

    def count(self) -> int:
        return self.collection.count()

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        _add(self.collection, [c.id for c in chunks], vectors, [c.text for c in chunks],
             [_to_meta(c) for c in chunks])

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        collection = self.collection
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), _MAX_BATCH):
            got = collection.get(ids=ids[start : start + _MAX_BATCH], include=["embeddings"])
            for id_, vec in zip(got["ids"], got["embeddings"], strict=True):
                out[id_] = np.asarray(vec, dtype=np.float32)
        return out

    def chunks(self) -> list[Chunk]:
        got = self.collection.get(include=["documents", "metadatas"])
        chunks = [_from_meta(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"],
                                                         strict=True)]
        return sorted(chunks, key=lambda c: (c.corpus_dir, c.source, c.position))

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first."""
        n = min(n, self.count())
        if n <= 0:
            return []
        res = self.collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32), n_results=n, include=["distances"]
        )
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)]


def _add(collection, ids: list[str], vectors: np.ndarray, documents: list[str], metadatas: list[dict]) -> None:
    for start in range(0, len(ids), _MAX_BATCH):
        end = start + _MAX_BATCH
        collection.add(ids=ids[start:end], embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                       documents=documents[start:end], metadatas=metadatas[start:end])


def _to_meta(c: Chunk) -> dict[str, Any]:
    return {
        "source": c.source,
        "corpus_dir": c.corpus_dir,
        "title": c.title,
        "section": c.section,
        "page": c.page if c.page is not None else -1,  # Chroma metadata has no null
        "position": c.position,
        "doc_meta": json.dumps(c.metadata, ensure_ascii=False),
    }


def _from_meta(id_: str, text: str, m: dict[str, Any]) -> Chunk:
    page = int(m.get("page", -1))
    return Chunk(
        id=id_,
        text=text,
        source=str(m["source"]),
        corpus_dir=str(m["corpus_dir"]),
        title=str(m.get("title", "")),
        section=str(m.get("section", "")),
        page=page if page >= 0 else None,
        position=int(m.get("position", 0)),
        metadata=json.loads(m.get("doc_meta") or "{}"),
    )
