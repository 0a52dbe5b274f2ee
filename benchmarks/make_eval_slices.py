"""Make the committed slices of the external dev sets (eval/external) from ../shared/bench, reproducibly.

    .venv/bin/python benchmarks/make_eval_slices.py [--out eval/external]

CI gates them (`assistant eval --set <name>-slice`) without ../shared. Each slice is a corpus folder of
.txt passages and a questions.jsonl in the eval question format, cut from the full set that
`assistant eval --set <name>` measures (assistant.evalsets), so file names and questions are the same:

* swequad-dev-slice: SweQUAD-MC dev passages in a seeded order, taken whole with all their questions until
  there are about 40, plus a few other dev passages as distractors.
* squad-dev-slice: the two SQuAD-sv dev articles with the fewest paragraphs, all their paragraphs, and a
  seeded sample of 20 answerable and 20 unanswerable questions of each.
* swefaq-dev-slice: a seeded sample of 40 SweFAQ dev questions, their answers and 20 other answers.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import evalsets  # noqa: E402
from assistant.evalsets import Collection  # noqa: E402

SEED = 10
SWEQUAD_QUESTIONS, SWEQUAD_DISTRACTORS = 40, 6
SQUAD_ARTICLES, SQUAD_PER_KIND = 2, 20
SWEFAQ_QUESTIONS, SWEFAQ_DISTRACTORS = 40, 20


def _gold_file(question: dict) -> str:
    return question["gold"][0]["source"]


def swequad_slice(bench: Path) -> Collection:
    full = evalsets.swequad_dev(bench)
    per_file = Counter(_gold_file(q) for q in full.questions)
    order = sorted(per_file)
    random.Random(SEED).shuffle(order)
    chosen: list[str] = []
    for name in order:
        if sum(per_file[c] for c in chosen) >= SWEQUAD_QUESTIONS:
            break
        chosen.append(name)
    distractors = [n for n in order if n not in chosen][:SWEQUAD_DISTRACTORS]
    questions = [q for q in full.questions if _gold_file(q) in chosen]
    return Collection({n: full.passages[n] for n in sorted(chosen + distractors)}, questions)


def squad_slice(bench: Path) -> Collection:
    full = evalsets.squad_dev(bench)
    article_of = {
        evalsets.passage_text(r): r["category"]
        for file in ("squad_v2_sv_dev.jsonl", "squad_v2_sv_dev_unanswerable.jsonl")
        for r in evalsets.read_jsonl(bench / file)
    }
    paragraphs = Counter(article_of[text] for text in full.passages.values())
    articles = sorted(paragraphs, key=lambda a: (paragraphs[a], a))[:SQUAD_ARTICLES]
    questions = []
    for article in articles:
        questions += evalsets.sample([q for q in full.questions if q["category"] == article], SQUAD_PER_KIND, SEED)
    passages = {n: t for n, t in sorted(full.passages.items()) if article_of[t] in articles}
    return Collection(passages, questions)


def swefaq_slice(bench: Path) -> Collection:
    full = evalsets.swefaq_dev(bench)
    questions = evalsets.sample(full.questions, SWEFAQ_QUESTIONS, SEED)
    answers = {_gold_file(q) for q in questions}
    others = sorted(set(full.passages) - answers)
    distractors = random.Random(SEED).sample(others, min(SWEFAQ_DISTRACTORS, len(others)))
    return Collection({n: full.passages[n] for n in sorted(answers | set(distractors))}, questions)


SLICES = {"swequad-dev-slice": swequad_slice, "squad-dev-slice": squad_slice, "swefaq-dev-slice": swefaq_slice}


def write_slice(collection: Collection, folder: Path) -> None:
    evalsets.write_corpus(collection.passages, folder / "corpus")
    lines = [json.dumps(q, ensure_ascii=False) for q in collection.questions]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=evalsets.SLICES_DIR)
    args = parser.parse_args()
    bench = evalsets.require_bench()
    for name, make in SLICES.items():
        collection = make(bench)
        write_slice(collection, args.out / name)
        answerable = sum(q["answerable"] for q in collection.questions)
        print(f"{name}: {len(collection.passages)} passages, {answerable} answerable + "
              f"{len(collection.questions) - answerable} unanswerable questions")


if __name__ == "__main__":
    main()
