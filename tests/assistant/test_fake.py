"""assistant.embeddings.fake (the hashing stand-in for the embedding model) and tests/fakes.py (the
relevance model's): deterministic, normalised, and similar texts get similar vectors and scores."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np

from assistant.embeddings import Embedder, TextEmbedder
from assistant.embeddings.fake import FAKE_MODEL, HashingEncoder, fake_embedder
from assistant.policy import Candidate
from assistant.settings import DEFAULT_MODEL
from assistant.types import Chunk, Hit

LIMIT = "Direktupphandlingsgränsen i LOU är 700 000 kronor."


def test_vectors_are_deterministic_unit_length_and_of_the_fixed_dimension(hashing_embedder):
    texts = [LIMIT, "Vinsten återinvesteras i verksamheten."]
    first = hashing_embedder.embed_passages(texts)
    again = fake_embedder().embed_passages(texts)  # a new instance: no state
    assert first.shape == (2, 384) and first.dtype == np.float32
    assert np.array_equal(first, again)
    # another process (another str-hash salt): an index built by one test run is read by the next
    code = ("import sys, numpy as np; from assistant.embeddings.fake import fake_embedder; "
            "np.save(sys.stdout.buffer, fake_embedder().embed_passages(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *texts], capture_output=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert np.array_equal(np.load(io.BytesIO(out)), first)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert not HashingEncoder().encode(["", " ?"]).any()  # nothing to hash: zero vectors, not NaN
    assert fake_embedder(dimension=64).embed_queries(["x"]).shape == (1, 64)


def test_shared_words_and_word_parts_make_texts_similar(hashing_embedder):
    [query] = hashing_embedder.embed_queries(["Vad är gränsen för direktupphandling?"])
    limit, unrelated = hashing_embedder.embed_passages([LIMIT, "Giraffen har en lång hals och fläckig päls."])
    assert limit @ query > unrelated @ query + 0.1
    # character n-grams: an inflected or compounded word still shares most of its features
    encoder = HashingEncoder(ngrams=(4,))
    words_only = HashingEncoder()
    a, b = "upphandlingen", "upphandlingar"
    assert (encoder.encode([a]) @ encoder.encode([b]).T)[0, 0] > 0.5
    assert abs((words_only.encode([a]) @ words_only.encode([b]).T)[0, 0]) < 0.3


def test_prefixes_are_applied_like_the_real_models(hashing_embedder):
    encoder = hashing_embedder.model
    assert np.array_equal(hashing_embedder.embed_queries([LIMIT])[0], encoder.encode(["query: " + LIMIT])[0])
    assert np.array_equal(hashing_embedder.embed_passages([LIMIT])[0], encoder.encode(["passage: " + LIMIT])[0])


def test_the_stand_in_has_its_own_name_in_the_fingerprint(hashing_embedder):
    assert isinstance(hashing_embedder, TextEmbedder)
    assert hashing_embedder.name == FAKE_MODEL and FAKE_MODEL in hashing_embedder.fingerprint
    # the same vectors under the real model's name would be another index: the name alone separates them
    impostor = Embedder(hashing_embedder.model, DEFAULT_MODEL, "query: ", "passage: ")
    assert impostor.fingerprint != hashing_embedder.fingerprint


def _candidate(text: str) -> Candidate:
    return Candidate(Hit(Chunk("c1", text, "a.md", "/korpus", "Titel", "", None, 0), 1.0), 0, text)


def test_overlap_scorer_grows_with_the_share_of_the_question_a_sentence_covers(overlap_scorer):
    scorer = overlap_scorer
    question = "Vem samordnar de regionala nätverken?"
    sentences = ["Regionala nätverk samordnas av en samordnare i varje län.",  # all three content stems
                 "Nätverken möts två gånger per år.",  # one of three
                 "Giraffen har en lång hals."]  # none
    scores = scorer.score(question, [_candidate(s) for s in sentences])
    assert scores.tolist() == [1.0, np.float32(1 / 9), 0.0]
    assert scorer.calls == [(question, sentences)]
    assert scorer.score("och de?", [_candidate(sentences[0])]).tolist() == [0.0]  # stop words only
