"""Can the shipped relevance model's own representation tell an answer from a near-miss? (issue 10)

    .venv/bin/python benchmarks/answerability_probe.py [--per-kind 400] [--threads 2]

SQuAD-sv's adversarial unanswerable questions come with a plausible but wrong answer in a sentence of the
same paragraph; an answerable question has the sentence that holds its answer. This probe reads both kinds
of (question, sentence) pair with the shipped relevance model in torch (the merged folder the runtime
builds) and asks, per article split, how well three things separate them (AUC, answerable vs not):

* the model's logit, which the answer policy uses today;
* a logistic regression on the mean-pooled encoder state (384 numbers) of the pair;
* a logistic regression on the head's hidden layer, tanh(dense(pooled)).

The regressions are fitted on the ``val`` articles (never trained on by the relevance model; used only to
choose its checkpoint) or, with ``--fit train``, on more pairs of the ``train`` articles (which the model
was trained on), and always scored on the ``dev`` articles (never trained on, reported by ``assistant eval
--set squad-dev``); the score on the articles fitted on is in-sample. A head
that would be worth training is one whose dev AUC is well above the logit's; if the frozen representation
does not separate the kinds, a new head on it will not either, and the encoder itself must learn it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import crossencoder as ce  # noqa: E402
from assistant.evalsets import bench_dir, read_jsonl, squad_split  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.text import split_sentences  # noqa: E402
from benchmarks.train_reranker import auc  # noqa: E402  (P(answerable above unanswerable), ties half)


def pairs_of(split: str, per_kind: int, seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(question, the one sentence holding the answer) = 1, (question, the one holding the plausible wrong
    answer) = 0, for the articles of ``split``; questions whose span is in 0 or several sentences are left out."""
    b = bench_dir()
    out: dict[int, list[tuple[str, str]]] = {1: [], 0: []}
    for name, key, label in (("squad_v2_sv_dev.jsonl", "short_answer", 1),
                             ("squad_v2_sv_dev_unanswerable.jsonl", "plausible_answer", 0)):
        for r in read_jsonl(b / name):
            if squad_split(r["category"]) != split:
                continue
            holding = [s for s in split_sentences(r["answer"]) if r[key] and r[key] in s]
            if len(holding) == 1:
                out[label].append(ce.pair_inputs(r["question"], holding[0], r["category"].replace("_", " ")))
    rng = random.Random(seed)
    pairs, labels = [], []
    for label in (1, 0):
        chosen = rng.sample(out[label], min(per_kind, len(out[label])))
        pairs += chosen
        labels += [label] * len(chosen)
    return pairs, np.array(labels)


def features(scorer: ce.TorchScorer, pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The pair's pooled encoder state, the head's hidden layer on it and the logit (the model's own head)."""
    import torch

    pooled = scorer.pooled(pairs)
    with torch.inference_mode():
        hidden = torch.tanh(scorer.model.head.dense(torch.from_numpy(pooled)))
        logit = scorer.model.head.out_proj(hidden)[:, 0]
    return {"logit": logit.numpy(), "pooled": pooled, "head hidden": hidden.numpy()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-kind", type=int, default=400, help="pairs of each kind per split")
    ap.add_argument("--train-per-kind", type=int, default=1500, help="the same for the train articles")
    ap.add_argument("--fit", choices=("val", "train"), default="val", help="the articles the regressions learn on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(args.threads)
    scorer = ce.load_scorer(Settings.from_env().model_cache)
    data = {}
    for split in ("val", "dev", "train"):
        t = time.perf_counter()
        pairs, labels = pairs_of(split, args.train_per_kind if split == "train" else args.per_kind, args.seed)
        data[split] = (features(scorer, pairs), labels)
        print(f"{split}: {int(labels.sum())} answerable + {int((1 - labels).sum())} unanswerable pairs, "
              f"{time.perf_counter() - t:.0f} s", flush=True)

    report: dict[str, dict[str, float]] = {}
    fit_x, fit_y = data[args.fit]
    for name in ("logit", "pooled", "head hidden"):
        row = {}
        if name == "logit":
            for split, (x, y) in data.items():
                row[split] = auc(x[name][y == 1], x[name][y == 0])
        else:
            for c in (0.01, 0.1, 1.0):
                model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
                model.fit(fit_x[name], fit_y)
                for split, (x, y) in data.items():
                    p = model.predict_proba(x[name])[:, 1]
                    row[f"{split} C={c}"] = auc(p[y == 1], p[y == 0])
        report[name] = row
        print(f"{name:12s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
