"""Assistant: the core API the CLI, the chat and the HTTP API share."""

from __future__ import annotations

from assistant.pipeline import Assistant
from assistant.types import Document


def test_documents_come_from_the_manifest_without_loading_the_index(served):
    fresh = Assistant(served.settings, embedder=None)  # no model: documents() must not need one
    docs = fresh.documents()
    assert sorted(d.source for d in docs) == sorted(
        p.relative_to(served.corpus.dir).as_posix() for p in served.corpus.files)
    assert fresh._index is None and fresh._embedder is None
    assert all(isinstance(d, Document) and d.chunks > 0 and d.corpus_dir for d in docs)
    assert sum(d.chunks for d in docs) == served.assistant.loaded_index.summaries.size  # every chunk listed
    dated = [d for d in docs if d.source.endswith(".md")]
    assert dated and all((d.valid_as_of, d.last_checked) == ("2026-11-01", "2026-11-28") for d in dated)
    assert fresh.generation() == served.assistant.loaded_index.name


def test_documents_of_a_folder_without_index_are_empty(tmp_path, settings_for, corpus):
    assert Assistant(settings_for(corpus.dir)).documents() == []
    assert Assistant(settings_for(corpus.dir)).generation() is None


def test_a_question_over_the_limit_is_refused_before_any_work(served):
    limited = Assistant(served.settings.with_(max_question_chars=50), embedder=None)  # no model, no index needed
    answer = limited.ask("Vad gäller för direktupphandling? " * 5)
    assert answer.abstained and answer.citations == [] and answer.nearest == []
    assert answer.reason.startswith("Frågan är för lång (") and "högst 50" in answer.reason
    assert answer.to_json()["reason"] == answer.reason
    assert limited._embedder is None  # refused before the model was even loaded

    within = Assistant(served.settings.with_(max_question_chars=len("Vilken är direktupphandlingsgränsen?")),
                       served.assistant.embedder)
    assert not within.ask("  Vilken är direktupphandlingsgränsen?  ").reason.startswith("Frågan är för lång")
