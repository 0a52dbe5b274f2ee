"""assistant.snapshot: a generation's served data in plain files equals what its Chroma store holds, and
serving falls back to Chroma when the files are missing or broken."""

from __future__ import annotations

import shutil

import numpy as np

from assistant import snapshot
from assistant.indexer import current_generation
from assistant.retrieval import LoadedIndex
from assistant.store import ChunkStore


def _same(a: snapshot.Snapshot, b: snapshot.Snapshot) -> None:
    assert a.chunks == b.chunks
    assert a.sentences == b.sentences
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.sentence_vectors, b.sentence_vectors)
    assert a.vectors.dtype == a.sentence_vectors.dtype == np.float32


def test_snapshot_holds_what_the_chroma_store_holds(served, embedder):
    gen = current_generation(served.settings.index_dir)
    stored = snapshot.read(gen.path)
    assert stored is not None and len(stored.chunks) == served.report.chunks
    assert len(stored.sentences) > len(stored.chunks)
    _same(stored, snapshot.from_store(ChunkStore(gen.path, None), embedder.dimension))


def test_served_index_comes_from_the_snapshot_or_from_chroma_alike(served, embedder, tmp_path):
    gen = current_generation(served.settings.index_dir)
    copy = tmp_path / gen.path.name
    shutil.copytree(gen.path, copy)
    from_files = LoadedIndex(type(gen)(copy, gen.manifest), embedder)
    (copy / snapshot.JSON).write_text("{ kaputt", encoding="utf-8")  # broken: ignored, Chroma serves
    assert snapshot.read(copy) is None
    from_chroma = LoadedIndex(type(gen)(copy, gen.manifest), embedder)
    (copy / snapshot.JSON).unlink()
    (copy / snapshot.VECTORS).unlink()
    assert snapshot.read(copy) is None
    for loaded in (from_chroma, LoadedIndex(type(gen)(copy, gen.manifest), embedder)):
        assert loaded.chunks == from_files.chunks
        assert loaded.sentences == from_files.sentences
        assert np.array_equal(loaded.vectors, from_files.vectors)
        assert np.array_equal(loaded.sentence_vectors, from_files.sentence_vectors)
        assert np.array_equal(loaded.sentence_owner, from_files.sentence_owner)
