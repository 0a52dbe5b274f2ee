"""What serving needs from a generation besides Chroma, written at index time into the generation folder.

Serving must not grow with the corpus, so nothing here is read whole into memory except what is small:

    lexical/          the BM25 index (bm25s ``save``), opened memory-mapped; plus the compound vocabulary
    chunk_ids.npy     chunk ids in chunk order (corpus folder, file, position): position -> id
    id_sorted.npy     the same ids sorted, and id_position.npy their positions: id -> position
    doc_start.npy     first position of each document (chunks of a document are contiguous), plus the end
    dense_stats.npz   mean vector and covariance of all chunk vectors (fusion's dense mean and spread)
    vectors.npy       the chunk vectors (float32), row i for position i: fusion's exact cosines by row

The arrays are opened with ``mmap_mode="r"`` (the covariance is dimension², not corpus-sized), except the
vectors, read by row with ``pread`` (``VectorRows``). They live twice, in Chroma for its ANN index and here
for exact scoring: fusion scores every chunk of the candidates' documents (hundreds per question), and
fetching those from a Chroma server by id means parsing ~8 KB of JSON per vector, where reading a row here
is a copy from the page cache.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from assistant.lexical import LexicalIndex
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
        if not ids or not self.size:
            return [None] * len(ids)
        wanted = np.array([i.encode() for i in ids], dtype="S")
        at = np.minimum(np.searchsorted(self.id_sorted, wanted), self.size - 1)
        found = self.id_sorted[at] == wanted
        return [int(self.id_position[a]) if ok else None for a, ok in zip(at, found, strict=True)]

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
    """Rows of ``vectors.npy`` read with ``os.pread``, a run of consecutive positions (a document's chunks)
    in one call. Not memory-mapped: Linux maps file pages in large blocks, and a mapping read at ~590
    scattered rows per question (MADV_RANDOM or not) made 146 MB of a 100k-chunk file resident in the
    serving process after 200 questions; read like this, the file stays in the kernel's page cache (shared,
    droppable) and the process holds only the rows it scores."""

    def __init__(self, path: Path, size: int):
        self._file = open(path, "rb")  # noqa: SIM115  # held for the generation's lifetime; pread is thread-safe
        try:
            version = np.lib.format.read_magic(self._file)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(self._file)
            if len(shape) != 2 or shape[0] != size or fortran or dtype != np.dtype("<f4"):
                raise OSError(f"{path}: {shape} {dtype} for {size} chunks of float32 rows")
        except BaseException:
            self._file.close()
            raise
        self.offset, self.shape, self.dtype = self._file.tell(), shape, dtype
        self._row_bytes = shape[1] * dtype.itemsize

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
            count = len(run)
            raw = os.pread(self._file.fileno(), count * self._row_bytes, self.offset + int(run[0]) * self._row_bytes)
            if len(raw) != count * self._row_bytes:
                raise OSError(f"{self._file.name}: short read at row {int(run[0])}")
            out[start:start + count] = np.frombuffer(raw, dtype=self.dtype).reshape(count, self.shape[1])
            start += count
        return out[np.searchsorted(unique, wanted)]

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()


def _open_vectors(path: Path, size: int) -> VectorRows | None:
    """The generation's vector rows; None for a generation written before the file existed (retrieval then
    fetches vectors from Chroma, as it did; the next ``assistant index`` writes the file)."""
    try:
        return VectorRows(path, size)
    except FileNotFoundError:
        return None
