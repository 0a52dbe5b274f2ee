"""benchmarks/tune_policy.py: the figures it tunes on are the product's own. Its records (the fused passages
and scored sentences of each question, collected once) replayed through run_policy at the shipped constants
must give what `assistant eval` measures on the same questions; on the fast tier's stand-ins."""

from __future__ import annotations

from assistant.evaluation import evaluate
from assistant.pipeline import Assistant
from benchmarks import tune_policy

QUESTIONS = [
    {"id": "gräns", "question": "Vad är direktupphandlingsgränsen i LOU?", "answerable": True,
     "gold": [{"source": "direktupphandling.md", "contains": "700 000"}], "key_facts": ["700 000"]},
    {"id": "andel", "question": "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?",
     "answerable": True, "gold": [{"source": "handbok.pdf"}], "key_facts": ["30 procent", "hälften"]},
    {"id": "vinst", "question": "Vad händer med vinsten i ett arbetsintegrerande socialt företag?",
     "answerable": True, "key_facts": ["återinvesteras"]},
    {"id": "surdeg", "question": "Hur bakar man surdegsbröd?", "answerable": False},
    {"id": "kostnad", "question": "Vad kostar det att delta i de regionala nätverken för sociala företag?",
     "answerable": False},
]


def test_replayed_records_give_the_figures_of_assistant_eval(fake_served, overlap_scorer):
    assistant = Assistant(fake_served.settings, fake_served.assistant.embedder, overlap_scorer)
    figures = tune_policy.run_policy([tune_policy.record(assistant, q) for q in QUESTIONS], {})
    report = evaluate(assistant, QUESTIONS)
    assert figures == {
        "n": 5, "ndcg@10": report.retrieval["ndcg@10"], "recall@1": report.retrieval["recall@1"],
        "key_facts": report.key_fact_coverage, "false_refusals": report.false_refusal_rate,
        "refusal_recall": report.refusal_recall, "median_words": report.median_answer_words}
    # not vacuous: some answered, some refused, so every figure is a number
    assert report.refusal_recall > 0 and report.false_refusal_rate < 1 and report.median_answer_words


def test_a_trial_changes_the_figures_and_then_the_constants_are_restored(fake_served, overlap_scorer):
    assistant = Assistant(fake_served.settings, fake_served.assistant.embedder, overlap_scorer)
    records = [tune_policy.record(assistant, q) for q in QUESTIONS]
    shipped, threshold = tune_policy.run_policy(records, {}), tune_policy.policy.ANSWER_THRESHOLD
    strict = tune_policy.run_policy(records, {"ANSWER_THRESHOLD": 1.01})  # no sentence can reach it
    assert strict["false_refusals"] == strict["refusal_recall"] == 1.0 and strict["median_words"] is None
    assert threshold == tune_policy.policy.ANSWER_THRESHOLD
    assert tune_policy.run_policy(records, {}) == shipped != strict
