"""A deterministic stand-in for the embedding model: hashed word and character n-gram features.

For the fast test tier (no model is loaded, every run gives the same vectors; the relevance model's
stand-in is in tests/fakes.py) and for benchmarks/scale.py, which needs 100k chunks embedded in seconds.
Never a default: nothing in the application selects it; a caller passes it in
(``Assistant(settings, fake_embedder())``).

The hashing embedder runs behind the real ``Embedder`` wrapper, so prefixes, batching and the fingerprint
are the production code. Its model name ``FAKE_MODEL`` is in that fingerprint: an index built with it is
rebuilt, never served, by the real model (and the other way round).
"""

from __future__ import annotations

import zlib

import numpy as np

from assistant.embeddings.embedder import Embedder
from assistant.text import words

FAKE_MODEL = "fake-hashing-embedder"


class HashingEncoder:
    """A bag of hashed features through a fixed random projection (seeded), L2-normalised.

    Features are the words and, with ``ngrams``, the character n-grams of each word (with boundary marks),
    so inflections and Swedish compounds ("direktupphandlingsgränsen" / "direktupphandling") still share
    most of their features. Texts that share features get nearby vectors (the projection keeps inner
    products on average), so candidate sets and score spreads look like real ones. crc32, not ``hash``:
    Python salts string hashes per process. Offers what ``Embedder`` calls on a model."""

    engine = "hashing"
    max_seq_length = 512

    def __init__(self, dimension: int = 384, buckets: int = 8192, ngrams: tuple[int, ...] = ()):
        self.projection = np.random.default_rng(12).standard_normal((buckets, dimension)).astype(np.float32)
        self.buckets = buckets
        self.ngrams = ngrams

    def get_embedding_dimension(self) -> int:
        return self.projection.shape[1]

    def count_tokens(self, text: str) -> int:
        return len(text.split()) * 4 // 3 + 2  # about what a subword tokenizer gives for Swedish prose

    def features(self, text: str) -> list[str]:
        out = []
        for w in words(text):
            out.append(w)
            marked = f"<{w}>"
            out.extend(marked[i : i + n] for n in self.ngrams for i in range(len(marked) - n + 1))
        return out

    def encode(self, texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
               show_progress_bar=False) -> np.ndarray:
        out = np.zeros((len(texts), self.projection.shape[1]), np.float32)
        for row, text in enumerate(texts):
            idx = [zlib.crc32(f.encode()) % self.buckets for f in self.features(text)]
            if idx:
                out[row] = self.projection[idx].sum(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)


def fake_embedder(dimension: int = 384, ngrams: tuple[int, ...] = (4,), name: str = FAKE_MODEL) -> Embedder:
    """The hashing embedder behind the real wrapper, with e5-style prefixes (they are hashed too: the
    prefix words add the same features to every passage, as a real prefix shifts every vector)."""
    return Embedder(HashingEncoder(dimension, ngrams=ngrams), name=name, query_prefix="query: ",
                    passage_prefix="passage: ")
