"""What serving needs from a generation besides Chroma, written at index time into the generation folder.

Serving must not grow with the corpus, so nothing here is read whole into memory except what is small:

    lexical/          the BM25 index (bm25s ``save``), its postings read with ``pread``, and the token ids and
                      the compound splitter's known words as hash tables (assistant.lexical)
    chunk_ids.npy     chunk ids in chunk order (corpus folder, file, position): position -> id
    id_sorted.npy     the same ids sorted, and id_position.npy their positions: id -> position
    doc_start.npy     first position of each document (chunks of a document are contiguous), plus the end
    dense_stats.npz   mean vector and covariance of all chunk vectors (fusion's dense mean and spread)
    vectors.npy       the chunk vectors (float32), row i for position i: fusion's exact cosines by row

The small arrays are opened with ``mmap_mode="r"`` (the covariance is dimension², not corpus-sized); the
vectors are read by row with ``pread`` (``VectorRows``). They live twice, in Chroma for its ANN index and here
for exact scoring: fusion scores every chunk of the candidates' documents (hundreds per question), and
fetching those from a Chroma server by id means parsing ~8 KB of JSON per vector, where reading a row here
is a copy from the page cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.lexical import LexicalIndex
from assistant.npyfile import NpyFile
from assistant.types import Chunk

LEXICAL = "lexical"
VECTORS = "vectors.npy"
FILES = ("chunk_ids.npy", "dense_stats.npz", "doc_start.npy", "id_position.npy", "id_sorted.npy", LEXICAL,
         VECTORS)


def chunk_order(chunk: Chunk) -> tuple[str, str, int]:
    """The order of positions: documents contiguous, their chunks in reading order."""
    return (chunk.corpus_dir, chunk.source, chunk.position)


def write(folder: Path, chunks: list[Chunk], vectors: np.ndarray) -> None:
    """``chunks`` in ``chunk_order`` with their vectors (row i is chunk i)."""
    ids = np.array([c.id.encode() for c in chunks], dtype="S")
    order = np.argsort(ids, kind="stable")
    np.save(folder / "chunk_ids.npy", ids)
    np.save(folder / "id_sorted.npy", ids[order])
    np.save(folder / "id_position.npy", order.astype(np.int64))
    keys = [(c.corpus_dir, c.source) for c in chunks]
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    np.save(folder / "doc_start.npy", np.array([*starts, len(keys)], dtype=np.int64))
    np.savez(folder / "dense_stats.npz", **dense_stats(vectors))
    np.save(folder / VECTORS, np.asarray(vectors, dtype=np.float32))  # what Chroma stores: float32
    LexicalIndex([c.embedding_text() for c in chunks]).save(folder / LEXICAL)


def dense_stats(vectors: np.ndarray, batch: int = 8192) -> dict[str, np.ndarray]:
    """Mean μ and population covariance Σ of the rows, in float64 and centred (two passes), so that
    μ·q and sqrt(qᵀΣq) are the mean and standard deviation of the cosines X·q to well below 1e-6."""
    n, dim = vectors.shape
    total = np.zeros(dim)
    for start in range(0, n, batch):
        total += vectors[start : start + batch].astype(np.float64).sum(axis=0)
    mean = total / max(n, 1)
    cov = np.zeros((dim, dim))
    for start in range(0, n, batch):
        centred = vectors[start : start + batch].astype(np.float64) - mean
        cov += centred.T @ centred
    return {"mean": mean, "cov": cov / max(n, 1), "count": np.array(n)}


class Summaries:
    """The memory-mapped side files of one generation."""

    def __init__(self, folder: Path):
        self.chunk_ids = np.load(folder / "chunk_ids.npy", mmap_mode="r")
        self.id_sorted = np.load(folder / "id_sorted.npy", mmap_mode="r")
        self.id_position = np.load(folder / "id_position.npy", mmap_mode="r")
        self.doc_start = np.load(folder / "doc_start.npy", mmap_mode="r")
        with np.load(folder / "dense_stats.npz") as stats:
            self.mean, self.cov = stats["mean"], stats["cov"]
        self.size = len(self.chunk_ids)
        self.lexical = LexicalIndex.load(folder / LEXICAL)
        self.vectors = _open_vectors(folder / VECTORS, self.size)

    def positions(self, ids: list[str]) -> list[int | None]:
        """Position of each id (None for an id this generation does not hold)."""
        return _positions(self.id_sorted, self.id_position, ids)

    def ids(self, positions) -> list[str]:
        return [self.chunk_ids[p].decode() for p in positions]

    def document(self, position: int) -> int:
        return int(np.searchsorted(self.doc_start, position, side="right")) - 1

    def document_positions(self, doc: int) -> range:
        return range(int(self.doc_start[doc]), int(self.doc_start[doc + 1]))

    def rows(self, positions: list[int]) -> np.ndarray:
        """The vectors of these positions (a copy of just those rows); requires ``vectors``."""
        return self.vectors.rows(positions)

    def dense_moments(self, query: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation of the query's cosine with every chunk, from μ and Σ."""
        q = np.asarray(query, dtype=np.float64)
        variance = float(q @ self.cov @ q)
        return float(self.mean @ q), float(np.sqrt(variance)) if variance > 0 else 0.0


class VectorRows:
    """Rows of ``vectors.npy`` read with ``pread`` (assistant.npyfile says why not a memory map), a run of
    consecutive positions (a document's chunks) in one call. A mapping read at ~590 scattered rows per
    question made 146 MB of a 100k-chunk file resident in the serving process after 200 questions; read
    like this, the process holds only the rows it scores."""

    def __init__(self, path: Path, size: int):
        self._file = NpyFile(path)
        shape, dtype = self._file.shape, self._file.dtype
        if len(shape) != 2 or shape[0] != size or dtype != np.dtype("<f4"):
            self._file.close()
            raise OSError(f"{path}: {shape} {dtype} for {size} chunks of float32 rows")
        self.shape, self.dtype = shape, dtype

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, positions: list[int]) -> np.ndarray:
        """The vectors of these positions, in their order (a position may repeat)."""
        wanted = np.asarray(positions, dtype=np.int64)
        unique = np.unique(wanted)
        out = np.empty((len(unique), self.shape[1]), dtype=self.dtype)
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        start = 0
        for run in np.split(unique, breaks) if len(unique) else []:
            out[start:start + len(run)] = self._file.read(int(run[0]), len(run))
            start += len(run)
        if np.array_equal(unique, wanted):  # ascending without repeats (an update's copy): no second copy
            return out
        return out[np.searchsorted(unique, wanted)]

    def close(self) -> None:
        self._file.close()


def stored_vectors(folder: Path, ids: list[str]) -> np.ndarray | None:
    """The vectors of these chunk ids in a generation's ``vectors.npy``, row i for ids[i], read through the
    id maps alone (an update copies the kept chunks' vectors from here, not from Chroma: no lexical index
    loaded for it). None for a generation written before the file existed, or one lacking any of the ids."""
    try:
        id_sorted = np.load(folder / "id_sorted.npy", mmap_mode="r")
        id_position = np.load(folder / "id_position.npy", mmap_mode="r")
        vectors = VectorRows(folder / VECTORS, len(id_sorted))
    except (OSError, ValueError):
        return None
    try:
        positions = _positions(id_sorted, id_position, ids)
        return None if None in positions else vectors.rows(positions)
    finally:
        vectors.close()


def _positions(id_sorted: np.ndarray, id_position: np.ndarray, ids: list[str]) -> list[int | None]:
    size = len(id_sorted)
    if not ids or not size:
        return [None] * len(ids)
    wanted = np.array([i.encode() for i in ids], dtype="S")
    at = np.minimum(np.searchsorted(id_sorted, wanted), size - 1)
    found = id_sorted[at] == wanted
    return [int(id_position[a]) if ok else None for a, ok in zip(at, found, strict=True)]


def _open_vectors(path: Path, size: int) -> VectorRows | None:
    """The generation's vector rows; None for a generation written before the file existed (retrieval then
    fetches vectors from Chroma, as it did; the next ``assistant index`` writes the file)."""
    try:
        return VectorRows(path, size)
    except FileNotFoundError:
        return None
