"""assistant.store in both deployments: the embedded Chroma and a real Chroma server (``chroma run``) give the
same index and the same search results, several app processes on one server switch generations together,
and the Chroma batch limit comes from the client."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from assistant.indexer import NoIndexError, build_index, current_generation
from assistant.pipeline import Assistant
from assistant.retrieval import IndexMismatchError, LoadedIndex
from assistant.settings import Settings
from assistant.store import SERVER_PREFIX, ChunkStore, server_client
from assistant.summaries import FILES
from assistant.types import Chunk

SERVED_FILES = sorted(["manifest.json", *FILES])  # a server generation's folder: no Chroma files

QUESTIONS = [
    "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?",
    "Vad är direktupphandlingsgränsen?",
    "Vem samordnar de regionala nätverken för sociala företag?",
    "samverkan mellan kommun och ideell förening",
]


def test_embedded_and_server_give_the_same_index_and_the_same_results(corpus, tmp_path, embedder, chroma_server):
    embedded = Settings(corpus_dirs=(corpus.dir,), index_dir=tmp_path / "inbaddad")
    server = embedded.with_(index_dir=tmp_path / "server", chroma_url=chroma_server)
    reports = [build_index(s, embedder) for s in (embedded, server)]
    assert reports[0].chunks == reports[1].chunks > 0
    indexes = [LoadedIndex.open(s, embedder) for s in (embedded, server)]
    assert [c.id for c in indexes[0].chunks] == [c.id for c in indexes[1].chunks]
    assert indexes[0].chunks == indexes[1].chunks  # text, sections, pages, metadata
    assert np.allclose(indexes[0].vectors, indexes[1].vectors, atol=1e-6)

    assistants = [Assistant(s, embedder) for s in (embedded, server)]
    for question in QUESTIONS:
        for mode in ("hybrid", "dense", "lexical"):
            a, b = (x.retriever.search(question, k=8, mode=mode).hits for x in assistants)
            assert [h.chunk.id for h in a] == [h.chunk.id for h in b], (question, mode)
            assert np.allclose([h.score for h in a], [h.score for h in b], rtol=0, atol=1e-5)
            assert np.allclose([h.dense for h in a], [h.dense for h in b], rtol=0, atol=1e-5)
        # Chroma's own nearest neighbours, over every chunk
        q = embedder.embed_queries([question])[0]
        a, b = (i.store.query(q, len(i.chunks)) for i in indexes)
        assert [i for i, _ in a] == [i for i, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], rtol=0, atol=1e-5)
    # and through the whole pipeline (the relevance model reorders): the same answer
    answers = [{k: v for k, v in x.ask(QUESTIONS[0]).to_json().items() if k != "timings_ms"} for x in assistants]
    assert not answers[0]["abstained"]
    assert answers[0] == answers[1]


def test_a_build_in_another_process_switches_every_server_reader(corpus, settings_for, embedder, chroma_server):
    settings = settings_for(corpus.dir, chroma_url=chroma_server)
    build_index(settings, embedder)
    first = current_generation(settings.index_dir).path.name
    readers = [Assistant(settings, embedder), Assistant(settings, embedder)]  # two app processes' views
    question = "Vilken myndighet ansvarar för tillsynen över sociala företag?"
    for reader in readers:
        assert "tillsyn.md" not in {h.chunk.source for h in reader.search(question)[0]}
    (corpus.dir / "tillsyn.md").write_text(
        "# Tillsyn\n\nTillsynen över sociala företag ansvarar Tillsynsmyndigheten för sociala företag för.\n",
        encoding="utf-8",
    )
    env = {**os.environ, "ASSISTANT_CHROMA_URL": chroma_server, "ASSISTANT_INDEX_DIR": str(settings.index_dir),
           "ASSISTANT_CORPUS_DIRS": str(corpus.dir), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "assistant", "index", "--json"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    second = current_generation(settings.index_dir).path.name
    assert second != first
    assert sorted(p.name for p in (settings.index_dir / second).iterdir()) == SERVED_FILES  # no Chroma files
    for reader in readers:
        hits, _ = reader.search(question)
        assert hits[0].chunk.source == "tillsyn.md"
        assert reader.loaded_index.name == second
    names = {c.name for c in server_client(settings).list_collections()}
    assert {SERVER_PREFIX + first, SERVER_PREFIX + second} <= names  # the previous one is kept for a while


def test_an_embedded_index_is_not_served_from_a_server_and_is_rebuilt_there(tiny, settings_for, embedder,
                                                                            chroma_server):
    embedded = settings_for(tiny)
    first = build_index(embedded, embedder)
    server = embedded.with_(chroma_url=chroma_server)
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(server, embedder)
    report = build_index(server, embedder)
    assert report.rebuilt and report.chunks_embedded == report.chunks == first.chunks
    hits, _ = Assistant(server, embedder).search("Hur stor andel ska ha funktionsnedsättning?")
    assert hits[0].chunk.source == "reserverade.md"


def test_a_generation_whose_collection_is_gone_is_reported_and_rebuilt(tiny, settings_for, embedder,
                                                                       chroma_server):
    settings = settings_for(tiny, chroma_url=chroma_server)
    first = build_index(settings, embedder)
    # the server lost the collection (or ASSISTANT_CHROMA_URL now names another server)
    server_client(settings).delete_collection(SERVER_PREFIX + current_generation(settings.index_dir).path.name)
    with pytest.raises(NoIndexError, match="finns inte i Chroma"):
        LoadedIndex.open(settings, embedder)
    report = build_index(settings, embedder)  # nothing changed in the corpus, but nothing can be copied
    assert report.rebuilt and report.chunks_embedded == report.chunks == first.chunks
    assert LoadedIndex.open(settings, embedder).store.count() == first.chunks


def test_add_and_read_more_chunks_than_one_chroma_batch(tmp_path, deployment):
    settings = Settings(index_dir=tmp_path / "index", **deployment)
    store = ChunkStore(tmp_path / "index" / "gen-batch-test", None, settings, create=True)
    assert store.batch_size == store.client.get_max_batch_size() > 0
    n = store.batch_size + 7
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{i:05d}", text=f"avsnitt {i}", source=f"dok{i % 3}.md", corpus_dir="/korpus",
                    title="Dokument", section="", page=None, position=i) for i in range(n)]
    store.add(chunks, vectors)
    assert store.count() == n
    assert sorted(c.id for c in store.chunks()) == [c.id for c in chunks]  # read back in pages
    got = store.vectors([c.id for c in chunks])
    assert np.allclose(np.stack([got[c.id] for c in chunks]), vectors, atol=1e-6)
    assert store.query(vectors[42], 3)[0][0] == "c00042"


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://host:8000", "http://", "http://host:8000/chroma"])
def test_a_malformed_chroma_url_is_refused(url):
    with pytest.raises(ValueError, match="ASSISTANT_CHROMA_URL"):
        server_client(Settings(chroma_url=url))
