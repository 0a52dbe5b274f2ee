"""assistant.embeddings.embedder with the real model: prefixes, normalisation, token counts, caching."""

from __future__ import annotations

import numpy as np

from assistant.embeddings import Embedder, load_embedder
from assistant.embeddings.embedder import _is_e5, resolve_model_path
from assistant.settings import DEFAULT_MODEL, Settings

PASSAGE = "Direktupphandlingsgränsen i LOU är 700 000 kronor från och med den 1 februari 2022."
UNRELATED = "Idéburet offentligt partnerskap bygger på att en ideell förening och kommunen delar på resurserna."
QUESTION = "Hur stor är gränsen för direktupphandling?"


def test_default_model_uses_e5_prefixes(embedder):
    assert embedder.name == DEFAULT_MODEL
    assert (embedder.query_prefix, embedder.passage_prefix) == ("query: ", "passage: ")
    assert embedder.dimension == 384
    assert embedder.max_tokens == 512


def test_query_and_passage_prefixes_give_different_vectors(embedder):
    q = embedder.embed_queries([PASSAGE])[0]
    p = embedder.embed_passages([PASSAGE])[0]
    assert q.shape == p.shape == (embedder.dimension,)
    assert float(q @ p) < 0.999
    # and the difference is exactly the prefix: the raw model on "query: ..." gives the query vector
    raw = embedder.model.encode(["query: " + PASSAGE], normalize_embeddings=True, convert_to_numpy=True)[0]
    assert np.allclose(raw, q, atol=1e-5)


def test_question_is_closer_to_its_passage_than_to_an_unrelated_one(embedder):
    q = embedder.embed_queries([QUESTION])[0]
    passages = embedder.embed_passages([PASSAGE, UNRELATED])
    sims = passages @ q
    assert sims[0] > sims[1]


def test_vectors_are_normalised_float32_and_batches_match_single_calls(embedder):
    many = embedder.embed_passages([PASSAGE, UNRELATED, "Kort."])
    assert many.dtype == np.float32
    assert np.allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    assert np.allclose(many[1], embedder.embed_passages([UNRELATED])[0], atol=1e-4)
    assert embedder.embed_passages([]).shape == (0, embedder.dimension)


def test_langchain_interface_matches(embedder):
    assert np.allclose(embedder.embed_documents([PASSAGE])[0], embedder.embed_passages([PASSAGE])[0])
    assert np.allclose(embedder.embed_query(QUESTION), embedder.embed_queries([QUESTION])[0])


def test_count_tokens_includes_prefix_and_special_tokens(embedder, reference_tokenizer):
    tokenizer = reference_tokenizer
    plain = len(tokenizer(PASSAGE, add_special_tokens=False)["input_ids"])
    prefix = len(tokenizer("passage:", add_special_tokens=False)["input_ids"])
    assert embedder.count_tokens(PASSAGE) == plain + prefix + 2  # <s> ... </s>


def test_fingerprint_changes_with_the_prefixes(embedder):
    other = Embedder(embedder.model, embedder.name, query_prefix="", passage_prefix="")
    assert other.fingerprint != embedder.fingerprint
    assert embedder.name in embedder.fingerprint


def test_load_embedder_is_cached_per_configuration(embedder, other_prefix_embedder):
    assert load_embedder(Settings()) is embedder
    custom = load_embedder(Settings(query_prefix="fråga: ", passage_prefix=""))
    assert custom is other_prefix_embedder
    assert custom is not embedder
    assert (custom.query_prefix, custom.passage_prefix) == ("fråga: ", "")
    assert custom.fingerprint != embedder.fingerprint
    q = custom.embed_queries([QUESTION])[0]
    raw = custom.model.encode(["fråga: " + QUESTION], normalize_embeddings=True, convert_to_numpy=True)[0]
    assert np.allclose(q, raw, atol=1e-5)


def test_e5_detection_and_model_paths(tmp_path):
    assert _is_e5(DEFAULT_MODEL)
    assert _is_e5("intfloat/multilingual-e5-base")
    assert not _is_e5("sentence-transformers/all-MiniLM-L6-v2")
    local = str(tmp_path / "my-model")
    assert resolve_model_path(Settings(model=local)) == local  # other models are passed through untouched


def test_the_load_after_a_prefetch_finds_the_prefetched_model(embedder):
    import threading

    from assistant.embeddings import embedder as embedder_module

    settings = Settings(embed_batch_size=7)  # a configuration nothing else loads
    embedder_module.prefetch(settings)
    for thread in threading.enumerate():
        if thread.name == "embedder-prefetch":
            thread.join(timeout=300)
    hits = embedder_module._load.cache_info().hits
    loaded = load_embedder(settings)
    assert embedder_module._load.cache_info().hits == hits + 1  # loaded by the prefetch, not now
    assert loaded.batch_size == 7 and loaded.model is not embedder.model
