"""Assistant: the core API the CLI, the chat and the HTTP API share."""

from __future__ import annotations

from assistant.pipeline import Assistant


def test_documents_come_from_the_manifest_without_loading_the_index(served):
    fresh = Assistant(served.settings, embedder=None)  # no model: documents() must not need one
    docs = fresh.documents()
    assert sorted(e["source"] for e in docs.values()) == sorted(
        p.relative_to(served.corpus.dir).as_posix() for p in served.corpus.files)
    assert fresh._index is None and fresh._embedder is None


def test_documents_of_a_folder_without_index_are_empty(tmp_path, settings_for, corpus):
    assert Assistant(settings_for(corpus.dir)).documents() == {}
