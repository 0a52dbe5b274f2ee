"""assistant.npyfile: slices of a saved array read with pread, without mapping the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.npyfile import NpyFile


@pytest.mark.parametrize("array", [np.arange(100, dtype=np.int32), np.arange(60, dtype=np.float32).reshape(20, 3)])
def test_slices_are_the_arrays_rows(tmp_path, array):
    np.save(tmp_path / "a.npy", array)
    saved = NpyFile(tmp_path / "a.npy")
    assert len(saved) == len(array) and saved.dtype == array.dtype
    for start, count in [(0, 1), (3, 7), (len(array) - 2, 2), (0, len(array))]:
        assert np.array_equal(saved.read(start, count), array[start:start + count])
    assert saved.read(5, 0).shape == (0, *array.shape[1:])
    with pytest.raises(IndexError):
        saved.read(len(array) - 1, 2)
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(tmp_path / "a.npy") not in maps.read_text()
    saved.close()


def test_an_array_of_python_objects_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(OSError, match="not a C-ordered array of numbers"):
        NpyFile(tmp_path / "o.npy")
