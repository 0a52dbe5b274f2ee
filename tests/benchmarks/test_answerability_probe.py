"""benchmarks/answerability_probe.py: the pairs it probes are what it says, taken from the articles of one
split only (so nothing fitted on the validation articles is scored on the dev ones); on the tiny bench."""

from __future__ import annotations

from assistant.crossencoder import pair_inputs
from assistant.evalsets import squad_split
from benchmarks import answerability_probe as probe

ARTICLES = ("Rhine", "Normans", "Pharmacy")


def test_pairs_come_from_the_articles_of_their_split_only(fake_bench):
    for split in ("dev", "val", "train"):
        pairs, labels = probe.pairs_of(split, per_kind=10, seed=13)
        assert len(pairs) == len(labels) and set(labels) <= {0, 1}
        mine = [a for a in ARTICLES if squad_split(a) == split]
        assert all(any(passage.startswith(f"passage: {a}") for a in mine) for _, passage in pairs)


def test_the_answer_sentence_is_a_positive_and_the_near_miss_sentence_a_negative(fake_bench):
    pairs, labels = probe.pairs_of(squad_split("Rhine"), per_kind=10, seed=13)
    got = dict(zip(pairs, labels, strict=True))
    assert got[pair_inputs("Hur lång är Rhen?", "Floden är 1 230 kilometer lång.", "Rhine")] == 1
    assert got[pair_inputs("Hur djup är Rhen?", "Floden är 1 230 kilometer lång.", "Rhine")] == 0
    # a span found in both sentences of its paragraph ("Rotterdam") names no one sentence: no pair
    asked = {question for question, _ in got}
    assert pair_inputs("Vem grundade Rotterdams hamn?", "")[0] not in asked
    assert pair_inputs("Var ligger Europas största hamn?", "")[0] not in asked


def test_fewer_pairs_when_asked_for_fewer(fake_bench):
    pairs, labels = probe.pairs_of(squad_split("Rhine"), per_kind=1, seed=13)
    assert len(pairs) == 2 and sorted(labels) == [0, 1]
