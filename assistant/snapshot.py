"""The served part of an index generation in two plain files, so that serving needs no chromadb.

Importing chromadb and opening its store cost a new process ~0.7 s (more than the rest of a CLI answer);
the retriever holds every vector in memory anyway. The indexer writes, beside the Chroma store::

    gen-…/serving.json   chunks and sentence rows, in the order LoadedIndex serves them
    gen-…/serving.npz    their vectors (float32)

read back from the finished store, so both hold the same data. A generation without them (built before)
is served from Chroma as before.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.types import Chunk, SentenceRow

JSON, VECTORS = "serving.json", "serving.npz"
FORMAT = 1


@dataclass
class Snapshot:
    chunks: list[Chunk]
    vectors: np.ndarray
    sentences: list[SentenceRow]  # only rows whose chunk is among the chunks
    sentence_vectors: np.ndarray


def from_store(store, dimension: int) -> Snapshot:
    """Everything the retriever needs from a ChunkStore (assistant.store), in serving order."""
    chunks = store.chunks()
    by_id = store.vectors([c.id for c in chunks])
    owners = {c.id for c in chunks}
    rows = [r for r in store.sentence_rows() if r.chunk_id in owners]
    by_row = store.vectors([r.id for r in rows], sentences=True)
    return Snapshot(chunks, _stack([by_id[c.id] for c in chunks], dimension), rows,
                    _stack([by_row[r.id] for r in rows], dimension))


def _stack(vectors: list[np.ndarray], dimension: int) -> np.ndarray:
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dimension), np.float32)


def write(folder: Path, snapshot: Snapshot) -> None:
    np.savez(folder / VECTORS, vectors=snapshot.vectors, sentence_vectors=snapshot.sentence_vectors)
    data = {"format": FORMAT, "chunks": [asdict(c) for c in snapshot.chunks],
            "sentences": [[r.id, r.chunk_id, r.position, r.text] for r in snapshot.sentences]}
    (folder / JSON).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def read(folder: Path) -> Snapshot | None:
    """The snapshot of a generation, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((folder / JSON).read_text(encoding="utf-8"))
        with np.load(folder / VECTORS, allow_pickle=False) as arrays:
            vectors, sentence_vectors = arrays["vectors"], arrays["sentence_vectors"]
    except (OSError, ValueError, KeyError):
        return None
    if data.get("format") != FORMAT:
        return None
    chunks = [Chunk(**c) for c in data["chunks"]]
    rows = [SentenceRow(i, c, int(p), t) for i, c, p, t in data["sentences"]]
    if len(chunks) != len(vectors) or len(rows) != len(sentence_vectors):
        return None
    return Snapshot(chunks, vectors, rows, sentence_vectors)
