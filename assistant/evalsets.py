"""External dev sets (public Swedish QA data in ../shared/bench) and how they are split.

The split is fixed here, once, so that training (benchmarks/train_*.py) and evaluation (`assistant eval`)
can never disagree about what was trained on:

* SQuAD-sv (machine-translated SQuAD 2.0): whole articles. Six of the 25 articles that come with
  adversarial unanswerable questions are the reported dev split (their answerable and unanswerable
  questions); three more are a validation split for model selection during training; everything else
  may be trained on.
* SweQUAD-MC: the dev file is reported and never trained on. One passage in five of the training file
  (by a hash of its passage id) is a held-out "unseen split" that is reported too.
* SweFAQ dev is reported and never trained on.

Only benchmarks, training scripts and `assistant eval --set` read the bench folder; the product never does.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from assistant.settings import PROJECT_ROOT

BENCH_ENV = "ASSISTANT_BENCH_DIR"

# Chosen as the six (and next three) articles with the smallest SHA-1 of their name among the 25 SQuAD-sv
# articles that have unanswerable questions; spelled out so that a changed file cannot move the split.
SQUAD_DEV_ARTICLES = frozenset({
    "Sky_(United_Kingdom)", "Rhine", "Fresno, Kalifornien", "Scottish_Parlament", "Victoria_(Australia)", "Tvinga",
})
SQUAD_VAL_ARTICLES = frozenset({"Amazonas regnskog", "Pharmacy", "Islamism"})
SWEQUAD_HOLDOUT_MODULUS = 5  # passages whose id hashes to 0 modulo this are held out of training


def bench_dir() -> Path:
    return Path(os.environ.get(BENCH_ENV) or PROJECT_ROOT.parent / "shared" / "bench")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def squad_split(article: str) -> str:
    """"dev" (reported), "val" (model selection) or "train" for a SQuAD-sv article (its ``category``)."""
    if article in SQUAD_DEV_ARTICLES:
        return "dev"
    return "val" if article in SQUAD_VAL_ARTICLES else "train"


def swequad_train_split(passage_id: str) -> str:
    """"holdout" (reported, never trained on) or "train" for a passage of swequad_mc_train.jsonl."""
    digest = int(hashlib.sha1(passage_id.encode()).hexdigest(), 16)
    return "holdout" if digest % SWEQUAD_HOLDOUT_MODULUS == 0 else "train"
