"""assistant.evaluation, the CI gate: the metrics as pure functions, the answer-level metrics of issue 10 (key
fact, refusals, answer length) measured on a tiny real index fake_served by the fast tier's stand-ins
(``fake_served``: the metrics must agree with what the assistant answers, whichever model answers), the
relevance rule, and the thresholds gate (which must reject a key naming no metric)."""

from __future__ import annotations

import json
import math
import re
import statistics

import pytest

from assistant.answer import REFUSAL
from assistant.evalsets import SETS
from assistant.evaluation import (
    METRICS,
    answer_text,
    answer_words,
    check_thresholds,
    contains_fact,
    dedupe_flags,
    evaluate,
    gold_match,
    median_words,
    percentile,
    ranking_metrics,
    refusal_metrics,
    validate_thresholds,
)
from assistant.pipeline import Assistant
from assistant.settings import PROJECT_ROOT
from assistant.text import normalize_ws

QUESTIONS = [
    {"id": "gräns", "question": "Vad är direktupphandlingsgränsen i LOU?", "answerable": True,
     "gold": [{"source": "direktupphandling.md", "contains": "700 000"}], "key_facts": ["700 000"]},
    {"id": "andel", "question": "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?",
     "answerable": True, "gold": [{"source": "handbok.pdf"}], "key_facts": ["30 procent"]},
    {"id": "vinst", "question": "Vad händer med vinsten i ett arbetsintegrerande socialt företag?",
     "answerable": True, "key_facts": ["återinvesteras"]},
    {"id": "surdeg", "question": "Hur bakar man surdegsbröd?", "answerable": False},
    {"id": "vm", "question": "Vem vann fotbolls-VM i Chile 1962?", "answerable": False},
]


@pytest.fixture(scope="module")
def measured(fake_served):
    """The report, and what the assistant answers when asked directly (the reference the metrics must match)."""
    report = evaluate(fake_served.assistant, QUESTIONS, name="liten")
    answers = [fake_served.assistant.ask(q["question"]) for q in QUESTIONS]
    return report, answers


def _words(text: str) -> int:
    return len(re.sub(r"\[\d+\]", " ", text).split())


# --- the metrics as pure functions ------------------------------------------------------------------


def test_ranking_metrics_by_hand():
    # query 1: relevant at rank 2; query 2: at rank 1; query 3: at rank 11 only (outside every cut-off)
    flags = [[False, True, False], [True], [False] * 10 + [True]]
    m = ranking_metrics(flags)
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@5"] == m["recall@10"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1) / 3)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + 0) / 3)
    # two relevant units, both found at ranks 1 and 3: the ideal ranking has them at 1 and 2
    two = ranking_metrics([[True, False, True]], n_relevant=[2])
    assert two["ndcg@10"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    assert ranking_metrics([]) == {"recall@1": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr@10": 0.0,
                                   "ndcg@10": 0.0}


def test_a_relevant_unit_counts_once_however_many_of_its_chunks_are_found():
    units = {"a1": "A", "a2": "A", "b1": "B"}
    flags, found = dedupe_flags(["a1", "x", "a2", "b1"], units.get)
    assert flags == [True, False, True] and found == 2  # a2 repeats A: dropped, so B moves up to rank 3


def test_refusal_figures_by_hand():
    answerable = [True, True, True, False, False]
    refused = [False, True, False, True, False]
    assert refusal_metrics(answerable, refused) == pytest.approx({
        "refusal_precision": 1 / 2,  # two refusals, one of an unanswerable question
        "refusal_recall": 1 / 2,  # one of the two unanswerable questions refused
        "answered_correct_rate": 2 / 3, "false_refusal_rate": 1 / 3})
    # nothing refused: precision is vacuously 1; no unanswerable question: no precision or recall
    assert refusal_metrics([True, False], [False, False])["refusal_precision"] == 1.0
    only_answerable = refusal_metrics([True, True], [True, False])
    assert only_answerable["refusal_precision"] is None and only_answerable["refusal_recall"] is None
    assert only_answerable["false_refusal_rate"] == 0.5
    only_unanswerable = refusal_metrics([False], [True])
    assert only_unanswerable["answered_correct_rate"] is None and only_unanswerable["refusal_recall"] == 1.0
    with pytest.raises(ValueError):
        refusal_metrics([True], [])


def test_median_words_and_percentiles():
    assert median_words(["Ett två tre. [1]", "Ett. [1] Två. [2]", "Ett två tre fyra fem sex."]) == 3.0
    assert median_words(["Ett två. [1]", "Ett två tre fyra. [1]"]) == 3.0  # the mean of the middle two
    assert median_words([]) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0 and percentile([5.0, 1.0, 3.0], 95) == 5.0
    assert percentile([], 50) == 0.0


def test_answer_words_ignore_citation_markers():
    answer = "Direktupphandlingsgränsen är 700 000 kronor. [1] Den gäller enligt LOU. [2]"
    assert answer_text(answer) == "Direktupphandlingsgränsen är 700 000 kronor. Den gäller enligt LOU."
    assert answer_words(answer) == 9


def test_key_fact_is_contained_whitespace_and_case_normalised_across_markers():
    assert contains_fact("Gränsen är 700\u00a0000  Kronor. [1]", "700 000 kronor")
    assert contains_fact("Lagen gäller från 2022. [1] Den ersätter", "2022. Den")
    assert not contains_fact("Gränsen är 700 000 kronor. [1]", "1 200 000")


def test_relevance_rule_needs_file_section_and_span():
    gold = [{"source": "a.txt", "contains": "tio  dagar"}, {"source": "b.md", "section": "Gränsen"}]
    assert gold_match("a.txt", "", "Tjänsten annonseras i tio\ndagar.", gold) == "a.txt#"
    assert gold_match("a.txt", "", "Tjänsten annonseras i en vecka.", gold) is None
    assert gold_match("b.md", "Direktupphandling > Gränsen", "", gold) == "b.md#Gränsen"
    assert gold_match("b.md", "Direktupphandling > Dokumentation", "", gold) is None
    assert gold_match("c.md", "Gränsen", "tio dagar", gold) is None


def test_metrics_agree_with_the_answers_on_a_real_index(measured, fake_served):
    report, answers = measured
    answerable = [a for q, a in zip(QUESTIONS, answers, strict=True) if q["answerable"]]
    unanswerable = [a for q, a in zip(QUESTIONS, answers, strict=True) if not q["answerable"]]
    assert (report.name, report.n_questions, report.n_answerable, report.n_unanswerable) == ("liten", 5, 3, 2)
    assert [row["abstained"] for row in report.per_question] == [a.abstained for a in answers]
    assert report.false_refusal_rate == pytest.approx(sum(a.abstained for a in answerable) / 3)
    assert report.answered_correct_rate == pytest.approx(1 - report.false_refusal_rate)
    assert report.refusal_recall == pytest.approx(sum(a.abstained for a in unanswerable) / 2)
    found = sum(not a.abstained and normalize_ws(q["key_facts"][0]).lower() in normalize_ws(
        re.sub(r"\s*\[\d+\]", "", a.answer)).lower() for q, a in zip(QUESTIONS[:3], answerable, strict=True))
    assert report.key_fact_coverage == pytest.approx(found / 3)
    assert report.median_answer_words == statistics.median(_words(a.answer) for a in answers if not a.abstained)
    assert report.citations_checked == sum(len(a.citations) for a in answers)
    assert report.citation_validity == 1.0
    # anchors, so that the figures above are not vacuous: the limit question is answered with its fact,
    # the baking question refused
    by_id = {row["id"]: row for row in report.per_question}
    assert not by_id["gräns"]["abstained"] and by_id["gräns"]["missing_facts"] == []
    assert by_id["surdeg"]["abstained"]


def test_retrieval_counts_the_first_chunk_of_the_gold_file_holding_the_span(measured, fake_served):
    report, _ = measured
    assert report.retrieval_questions == 2  # the question without gold passages is not ranked
    hits, _ = fake_served.assistant.search(QUESTIONS[0]["question"], k=10)
    expected = next(h.rank for h in hits if h.chunk.source == "direktupphandling.md" and "700 000" in h.chunk.text)
    assert report.per_question[0]["gold_rank"] == expected
    assert report.retrieval["recall@10"] == pytest.approx(
        sum(row.get("gold_rank") is not None for row in report.per_question) / 2)


def test_each_question_is_retrieved_and_read_by_the_relevance_model_once(fake_served, overlap_scorer):
    # the ranking is scored on the retrieval that answered: a second search per question would double the
    # relevance model's work (the eval set's answerable questions with gold passages were read twice)
    assistant = Assistant(fake_served.settings, fake_served.assistant.embedder, overlap_scorer)
    report = evaluate(assistant, QUESTIONS)
    assert [asked for asked, _ in overlap_scorer.calls] == [q["question"] for q in QUESTIONS]
    assert report.retrieval_questions == 2 and report.per_question[0]["gold_rank"] is not None


def test_a_refusal_never_counts_as_carrying_the_key_fact(fake_served):
    question = {"id": "x", "question": "Hur bakar man surdegsbröd?", "answerable": True,
                "key_facts": [REFUSAL[:20]]}
    report = evaluate(fake_served.assistant, [question])
    [row] = report.per_question
    assert row["abstained"] and REFUSAL[:20] in row["answer"]  # the text holds it, the answer does not
    assert report.key_fact_coverage == 0.0 and row["missing_facts"] == [REFUSAL[:20]]
    assert report.false_refusal_rate == 1.0 and report.median_answer_words is None


def test_a_set_without_unanswerable_questions_has_no_refusal_figures(fake_served):
    report = evaluate(fake_served.assistant, QUESTIONS[:1])
    assert report.refusal_recall is None and report.refusal_precision is None
    assert check_thresholds(report, {"refusal_recall": 0.1}) == ["refusal_recall: mäts inte på det här frågesetet"]


# --- thresholds ------------------------------------------------------------------------------------


def test_a_misspelt_threshold_key_is_rejected_not_ignored(measured):
    report, _ = measured
    with pytest.raises(ValueError, match="recal@1"):
        check_thresholds(report, {"recal@1": 0.5, "key_fact_coverage": 0.1})
    with pytest.raises(ValueError, match="Okänt mått"):
        validate_thresholds({"keyfact_coverage": 0.7})


def test_bad_threshold_values_are_rejected():
    for bad in ({"recall@1": "hög"}, {"recall@1": True}, {"median_answer_words": {"most": 60}}, [0.5]):
        with pytest.raises(ValueError):
            validate_thresholds(bad)


def test_floors_and_ceilings(measured):
    report, _ = measured
    flat = report.metrics()
    assert set(flat) == set(METRICS)
    assert check_thresholds(report, {k: v for k, v in flat.items() if v is not None}) == []  # at the value
    failures = check_thresholds(report, {"citation_validity": 1.01,
                                         "median_answer_words": {"max": flat["median_answer_words"] - 1},
                                         "false_refusal_rate": {"max": 1.0}})
    assert [f.split(":")[0] for f in failures] == ["citation_validity", "median_answer_words"]


GATES = sorted((PROJECT_ROOT / "eval").glob("thresholds*.json"))


@pytest.mark.parametrize("path", GATES, ids=[p.name for p in GATES])
def test_committed_gates_name_only_metrics(path):
    assert validate_thresholds(json.loads(path.read_text(encoding="utf-8")))


def test_make_test_gates_every_slice_with_its_own_thresholds():
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    gate = next(line for line in makefile.splitlines() if "assistant eval" in line and "--thresholds" in line)
    pairs = re.findall(r"--set (\S+) --thresholds (\S+)", gate)
    slices = [n for n in SETS if n.endswith("-slice")]
    assert {name for name, _ in pairs} == {"eval", *slices}
    for name, path in pairs:
        assert (PROJECT_ROOT / path).is_file()
        assert path == ("eval/thresholds.json" if name == "eval" else f"eval/thresholds-{name}.json")
