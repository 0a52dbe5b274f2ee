"""Assistant: the core API the CLI, the chat and the HTTP API share.

On the fast tier's stand-ins (``fake_served``): the real loaders, chunker, Chroma, BM25, fusion and answer
policy, with the hashing embedder and the word-overlap relevance scorer in place of the two models."""

from __future__ import annotations

from fakes import WordOverlapScorer

from assistant import policy
from assistant.answer import REFUSAL
from assistant.cite import verify
from assistant.pipeline import Assistant
from assistant.types import Document


def test_documents_come_from_the_manifest_without_loading_the_index(fake_served):
    fresh = Assistant(fake_served.settings, embedder=None)  # no model: documents() must not need one
    docs = fresh.documents()
    assert sorted(d.source for d in docs) == sorted(
        p.relative_to(fake_served.corpus.dir).as_posix() for p in fake_served.corpus.files)
    assert fresh._index is None and fresh._embedder is None
    assert all(isinstance(d, Document) and d.chunks > 0 and d.corpus_dir for d in docs)
    assert sum(d.chunks for d in docs) == fake_served.assistant.loaded_index.summaries.size  # every chunk listed
    dated = [d for d in docs if d.source.endswith(".md")]
    assert dated and all((d.valid_as_of, d.last_checked) == ("2026-11-01", "2026-11-28") for d in dated)
    assert fresh.generation() == fake_served.assistant.loaded_index.name


def test_documents_of_a_folder_without_index_are_empty(tmp_path, settings_for, corpus):
    assert Assistant(settings_for(corpus.dir)).documents() == []
    assert Assistant(settings_for(corpus.dir)).generation() is None


def test_a_question_over_the_limit_is_refused_before_any_work(fake_served):
    limited = Assistant(fake_served.settings.with_(max_question_chars=50), embedder=None)  # no model, no index
    answer = limited.ask("Vad gäller för direktupphandling? " * 5)
    assert answer.abstained and answer.citations == [] and answer.nearest == []
    assert answer.reason.startswith("Frågan är för lång (") and "högst 50" in answer.reason
    assert answer.to_json()["reason"] == answer.reason
    assert limited._embedder is None  # refused before the model was even loaded

    within = Assistant(fake_served.settings.with_(max_question_chars=len("Vilken är direktupphandlingsgränsen?")),
                       fake_served.assistant.embedder, WordOverlapScorer())
    assert not within.ask("  Vilken är direktupphandlingsgränsen?  ").reason.startswith("Frågan är för lång")


def test_an_answer_quotes_the_sentences_the_relevance_model_chose_and_cites_them_verbatim(fake_served):
    question = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"
    answer = fake_served.assistant.ask(question)
    assert not answer.abstained and answer.mode == "extractive" and answer.nearest == []
    first = answer.citations[0]
    assert (first.source, first.page) == ("handbok.pdf", 2) and "30 procent" in first.quote
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert all(verify(c) is None for c in answer.citations)  # verbatim in the file, read independently
    # the scorer read the sentences of the top passages for exactly this question
    asked, read = fake_served.assistant.relevance.calls[-1]
    assert asked == question and first.quote in read
    assert answer.confidence == max(fake_served.assistant.relevance.score(question, policy.candidates(
        fake_served.assistant.retriever.search(question, k=policy.PASSAGES).hits)))
    assert {"relevance", "retrieve", "answer", "total"} <= set(answer.timings_ms)


def test_ask_ranked_answers_as_ask_and_ranks_as_search_from_one_reading(fake_served, overlap_scorer):
    assistant = Assistant(fake_served.settings, fake_served.assistant.embedder, overlap_scorer)
    for question in ("Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?",
                     "Hur bakar man surdegsbröd?"):
        answer, ranked = assistant.ask_ranked(question, k=10)
        assert len(overlap_scorer.calls) == 1  # retrieved and read once for both
        overlap_scorer.calls.clear()
        alone = assistant.ask(question)
        searched, _ = assistant.search(question, k=10)
        overlap_scorer.calls.clear()
        assert (answer.answer, answer.abstained, answer.reason, answer.confidence, answer.citations) == (
            alone.answer, alone.abstained, alone.reason, alone.confidence, alone.citations)
        assert [(h.chunk.id, h.score, h.rank) for h in answer.nearest] == [
            (h.chunk.id, h.score, h.rank) for h in alone.nearest]
        assert len(ranked) == 10 > max(assistant.settings.top_k, policy.PASSAGES)
        assert [(h.chunk.id, h.score, h.rank) for h in ranked] == [(h.chunk.id, h.score, h.rank) for h in searched]
    assert assistant.ask_ranked("   ") == (assistant.ask("   "), [])


def test_a_question_the_corpus_does_not_touch_is_refused_with_the_nearest_passages(fake_served):
    answer = fake_served.assistant.ask("Hur bakar man surdegsbröd?")
    assert answer.abstained and answer.citations == [] and answer.confidence == 0.0
    assert answer.answer.splitlines()[0] == REFUSAL
    assert 1 <= len(answer.nearest) <= 3
    assert all(f"({h.chunk.source})" in answer.answer for h in answer.nearest)


def test_a_number_question_without_that_number_in_the_corpus_is_refused_with_the_reason(fake_served):
    answer = fake_served.assistant.ask("Vad kostar det att delta i de regionala nätverken för sociala företag?")
    assert answer.abstained and answer.reason == policy.MISSING_NUMBER["money"]
    assert answer.reason in answer.answer
    limit = fake_served.assistant.ask("Upp till vilket belopp får en kommun direktupphandla?")
    assert not limit.abstained and "700 000 kronor" in limit.answer.split(" [1]")[0]


def test_an_empty_question_is_refused_without_searching(fake_served):
    scorer = WordOverlapScorer()
    assistant = Assistant(fake_served.settings, fake_served.assistant.embedder, scorer)
    answer = assistant.ask("   ")
    assert answer.abstained and answer.citations == [] and answer.nearest == []
    assert scorer.calls == [] and assistant._index is None
