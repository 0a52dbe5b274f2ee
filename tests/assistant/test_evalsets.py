"""assistant.evalsets: the fixed split, and the sets `assistant eval --set` materialises from a bench
folder (a tiny one written by the test, in the real files' formats) or from the committed slices."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from assistant import evalsets
from assistant.evaluation import gold_match
from assistant.settings import PROJECT_ROOT, Settings
from assistant.text import normalize_ws


def test_squad_split_is_by_whole_article():
    assert evalsets.squad_split("Rhine") == "dev"
    assert evalsets.squad_split("Pharmacy") == "val"
    assert evalsets.squad_split("Normans") == "train"
    assert not evalsets.SQUAD_DEV_ARTICLES & evalsets.SQUAD_VAL_ARTICLES


def test_swequad_holdout_is_by_passage_and_about_a_fifth():
    ids = [f"swequad-training-p{i:04d}" for i in range(1000)]
    held = [p for p in ids if evalsets.swequad_train_split(p) == "holdout"]
    assert 150 < len(held) < 250
    assert all(evalsets.swequad_train_split(p) == "holdout" for p in held)  # stable per passage


# --- materialised sets -----------------------------------------------------------------------------


def _bench_records(bench, file):
    return evalsets.read_jsonl(bench / file)


def _corpus_texts(evalset) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in evalset.corpus_dir.glob("*.txt")}


def _check_span_questions(evalset, records):
    """Each record became an answerable question whose gold file holds the passage and the span."""
    texts = _corpus_texts(evalset)
    assert [q["id"] for q in evalset.questions] == [r["id"] for r in records]
    for q, r in zip(evalset.questions, records, strict=True):
        [gold] = q["gold"]
        assert q["answerable"] is True and q["key_facts"] == [r["short_answer"]]
        assert gold == {"source": f"{r['passage_id']}.txt", "contains": r["short_answer"]}
        assert texts[gold["source"]] == r["answer"].replace("\r\n", "\n")
        assert gold_match(gold["source"], "", texts[gold["source"]], q["gold"]) is not None


def test_swequad_dev_asks_the_dev_questions_over_all_passages(fake_bench, tmp_path):
    evalset = evalsets.prepare("swequad-dev", tmp_path / "work")
    dev = _bench_records(fake_bench, "swequad_mc_dev.jsonl")
    train = _bench_records(fake_bench, "swequad_mc_train.jsonl")
    assert set(_corpus_texts(evalset)) == {f"{r['passage_id']}.txt" for r in dev + train}
    assert all("\r" not in t for t in _corpus_texts(evalset).values())
    _check_span_questions(evalset, dev)
    assert evalset.corpus_dir == tmp_path / "work" / "swequad-mc" / "corpus"
    assert evalset.index_dir == tmp_path / "work" / "swequad-mc" / "index"


def test_swequad_holdout_asks_only_held_out_passages_questions_over_the_same_index(fake_bench, tmp_path):
    holdout = evalsets.prepare("swequad-holdout", tmp_path / "work")
    dev = evalsets.prepare("swequad-dev", tmp_path / "work")
    train = _bench_records(fake_bench, "swequad_mc_train.jsonl")
    held = [r for r in train if evalsets.swequad_train_split(r["passage_id"]) == "holdout"]
    assert held and len(held) < len(train)  # the fake bench has both sides of the split
    _check_span_questions(holdout, held)
    assert (holdout.corpus_dir, holdout.index_dir) == (dev.corpus_dir, dev.index_dir)


def test_squad_dev_indexes_only_dev_articles_paragraphs_once(fake_bench, tmp_path):
    evalset = evalsets.prepare("squad-dev", tmp_path / "work")
    answerable = _bench_records(fake_bench, "squad_v2_sv_dev.jsonl")
    unanswerable = _bench_records(fake_bench, "squad_v2_sv_dev_unanswerable.jsonl")
    dev_texts = {r["answer"] for r in answerable + unanswerable if evalsets.squad_split(r["category"]) == "dev"}
    texts = _corpus_texts(evalset)
    assert sorted(texts.values()) == sorted(dev_texts)  # both files' paragraphs, each once, no other article
    dev_answerable = [r for r in answerable if r["category"] == "Rhine"]
    asked = {q["id"]: q for q in evalset.questions}
    assert set(asked) == {r["id"] for r in answerable + unanswerable if r["category"] == "Rhine"}
    for r in unanswerable:
        if r["id"] in asked:
            assert asked[r["id"]]["answerable"] is False and not asked[r["id"]]["gold"]
    for r in dev_answerable:
        assert asked[r["id"]]["gold"] == [{"source": f"{r['passage_id']}.txt", "contains": r["short_answer"]}]


def test_squad_dev_samples_answerable_and_unanswerable_separately_and_reproducibly(fake_bench, tmp_path):
    one = evalsets.prepare("squad-dev", tmp_path / "work", limit=1)
    assert [q["answerable"] for q in one.questions].count(True) == 1
    assert [q["answerable"] for q in one.questions].count(False) == 1
    assert one.questions == evalsets.prepare("squad-dev", tmp_path / "work", limit=1).questions
    assert len(_corpus_texts(one)) == 3  # the sample never shrinks the index
    everything = evalsets.prepare("squad-dev", tmp_path / "work", all_questions=True)
    assert len(everything.questions) == 6
    assert evalsets.DEFAULT_LIMITS["squad-dev"] == 150


def test_sample_keeps_file_order_and_caps_each_kind():
    qs = [{"id": i, "answerable": i % 3 != 0} for i in range(30)]
    picked = evalsets.sample(qs, 4, seed=1)
    assert [q["id"] for q in picked] == sorted(q["id"] for q in picked)
    assert sum(q["answerable"] for q in picked) == 4 and sum(not q["answerable"] for q in picked) == 4
    assert evalsets.sample(qs, None) == qs


def test_swefaq_dev_indexes_answers_and_points_each_question_at_its_answer(fake_bench, tmp_path):
    evalset = evalsets.prepare("swefaq-dev", tmp_path / "work")
    records = _bench_records(fake_bench, "swefaq_dev.jsonl")
    texts = _corpus_texts(evalset)
    assert sorted(texts.values()) == sorted({r["answer"] for r in records})  # a shared answer is one file
    for q, r in zip(evalset.questions, records, strict=True):
        [gold] = q["gold"]
        assert q["question"] == r["question"] and q["answerable"] and not q["key_facts"]
        assert texts[gold["source"]] == r["answer"]


def test_eval_set_is_the_projects_question_file_over_the_products_corpus(tmp_path):
    evalset = evalsets.prepare("eval", tmp_path / "work")
    assert evalset.questions == evalsets.read_jsonl(PROJECT_ROOT / "eval" / "questions.jsonl")
    settings = Settings()
    assert evalset.settings_for(settings) == settings


def test_an_external_set_changes_only_the_corpus_and_index_folders(fake_bench, tmp_path):
    evalset = evalsets.prepare("swefaq-dev", tmp_path / "work")
    settings = Settings(lexical_weight=0.5, top_k=7)
    own = evalset.settings_for(settings)
    assert own.corpus_dirs == (evalset.corpus_dir,) and own.index_dir == evalset.index_dir
    assert own.with_(corpus_dirs=settings.corpus_dirs, index_dir=settings.index_dir) == settings


def test_missing_bench_folder_is_a_clear_swedish_error(tmp_path, monkeypatch):
    monkeypatch.setenv(evalsets.BENCH_ENV, str(tmp_path / "finns-inte"))
    with pytest.raises(evalsets.EvalSetError, match=r"Testdata saknas.*ASSISTANT_BENCH_DIR"):
        evalsets.prepare("swequad-dev", tmp_path / "work")


def test_write_corpus_leaves_unchanged_files_alone_and_removes_stale_ones(tmp_path):
    folder = evalsets.write_corpus({"a.txt": "A", "b.txt": "B"}, tmp_path / "c")
    os.utime(folder / "a.txt", (1, 1))
    evalsets.write_corpus({"a.txt": "A", "c.txt": "C"}, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "c.txt"]
    assert (folder / "a.txt").stat().st_mtime == 1  # not rewritten: the index sees the same file


# --- the committed slices (eval/external) ------------------------------------------------------------

SLICES = [n for n in evalsets.SETS if n.endswith("-slice")]


@pytest.mark.parametrize("name", SLICES)
def test_committed_slice_is_consistent(name, tmp_path):
    evalset = evalsets.prepare(name, tmp_path / "work")
    texts = _corpus_texts(evalset)
    assert len(evalset.questions) >= 40
    for q in evalset.questions:
        for g in q["gold"]:
            assert g["source"] in texts
            assert normalize_ws(g.get("contains", "")) in normalize_ws(texts[g["source"]])
    used = {g["source"] for q in evalset.questions for g in q["gold"]}
    assert used < set(texts) or name == "squad-dev-slice"  # distractor passages beside the answers


def test_slices_hold_only_reported_dev_data(tmp_path):
    swequad = evalsets.prepare("swequad-dev-slice", tmp_path / "w").questions
    assert all(q["id"].startswith("swequad-dev-") for q in swequad)
    squad = evalsets.prepare("squad-dev-slice", tmp_path / "w").questions
    assert {evalsets.squad_split(q["category"]) for q in squad} == {"dev"}
    assert sum(q["answerable"] for q in squad) == sum(not q["answerable"] for q in squad) == 40
    swefaq = evalsets.prepare("swefaq-dev-slice", tmp_path / "w").questions
    assert all(q["id"].startswith("swefaq-dev-") for q in swefaq)


@pytest.mark.skipif(not evalsets.bench_dir().is_dir(), reason="../shared/bench is not here (a fresh clone)")
def test_committed_slices_are_what_the_script_makes_from_the_bench(tmp_path, monkeypatch):
    monkeypatch.setenv(evalsets.BENCH_ENV, str(evalsets.bench_dir()))
    subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "make_eval_slices.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    for name in SLICES:
        made, committed = tmp_path / name, evalsets.SLICES_DIR / name
        assert (made / "questions.jsonl").read_text() == (committed / "questions.jsonl").read_text(), name
        made_files = {p.name: p.read_text() for p in (made / "corpus").iterdir()}
        assert made_files == {p.name: p.read_text() for p in (committed / "corpus").iterdir()}, name
