"""Slices of a saved ``.npy`` array read with ``os.pread``, for serving files that grow with the corpus.

Why not ``np.load(mmap_mode="r")``: this kernel's page cache (ext4, Linux 6.x) keeps files in large
folios and a page fault maps the whole folio into the process, so a few hundred scattered reads per
question made most of a 100k-chunk file resident in every serving process (README, Scale). Read with
``pread``, the file stays in the kernel's page cache (shared between processes, droppable) and the
process holds only the slices it asked for.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np


class NpyFile:
    """A C-ordered ``.npy`` file; ``read(start, count)`` returns rows start … start+count-1 (a copy)."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")  # noqa: SIM115  # held for the generation's lifetime; pread is thread-safe
        try:
            version = np.lib.format.read_magic(self._file)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(self._file)
            if fortran or dtype.hasobject or not shape:
                raise OSError(f"{path}: {shape} {dtype} is not a C-ordered array of numbers")
        except BaseException:
            self._file.close()
            raise
        self.path, self.offset, self.shape, self.dtype = path, self._file.tell(), tuple(shape), dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, count: int) -> np.ndarray:
        if count <= 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        if start < 0 or start + count > self.shape[0]:
            raise IndexError(f"{self.path}: rows {start}..{start + count} of {self.shape[0]}")
        size = count * self.row_bytes
        raw = os.pread(self._file.fileno(), size, self.offset + start * self.row_bytes)
        if len(raw) != size:
            raise OSError(f"{self.path}: short read at row {start}")
        return np.frombuffer(raw, dtype=self.dtype).reshape(count, *self.shape[1:])

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
