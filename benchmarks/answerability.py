"""Can features of what the pipeline already computes tell an answerable question from a near-miss?

    PYTHONPATH=. .venv/bin/python benchmarks/answerability.py --sets squad-val,eval,squad-dev,swequad-dev,swefaq-dev \
        --train squad-val --thresholds 0,0.2,0.3,0.4 --rule top_cosine

(the README's figures, issue 10; about an hour on the shared 2-core machine the first time, then seconds
from the cached records; ``--cached-only`` uses what a stopped collection saved so far).

Issue 10's refusal side. The relevance model's best sentence score alone separates SQuAD-sv's adversarial
unanswerable questions from answerable ones poorly (AUC 0.58 on the dev paragraphs). This script collects,
per question, what the product computes anyway (retrieval hits with their cosine / BM25 / fused scores and
the relevance model's scores of the policy's candidate sentences, exactly as `assistant ask` does) and
derives answerability features from it (``answerability_features``): the best sentence's
log-odds, its margin over the second, the cosine and fused score of the best passages, how many of the
question's content words the chosen sentence and its passage contain, whether it asks for a number,
negation. BM25 enters only through the fused score: the raw score depends on the corpus and its z-score is
not kept on the hit. A logistic regression on those features is fitted on data that is never reported:

* ``squad-val``: the three SQuAD-sv validation articles (``evalsets.SQUAD_VAL_ARTICLES``; the relevance
  model never trained on them, it only chose its checkpoint there), answerable + unanswerable;
* ``squad-train``: the SQuAD-sv articles the relevance model trained on (its scores there are biased:
  it has seen those questions), answerable + unanswerable; not used for the README's figures;
* ``swequad-train``: SweQUAD-MC training passages outside the holdout (answerable only), over the same
  index as ``swequad-dev``; not collected for the README's figures (time).

Whole articles / passages, never single questions, separate training and dev data: the dev sets (eval,
SweQUAD-MC dev, SQuAD-sv dev articles, SweFAQ dev) are only scored, and the refusal threshold is chosen
on all four at once with the objective of benchmarks/tune_policy.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import evalsets, policy  # noqa: E402
from assistant.lexical import STOPWORDS  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.text import words  # noqa: E402
from assistant.types import Hit  # noqa: E402
from benchmarks.tune_policy import Record, collect, objective, run_policy  # noqa: E402

DEV_SETS = ("eval", "swequad-dev", "squad-dev", "swefaq-dev", "swequad-dev-slice", "squad-dev-slice",
            "swefaq-dev-slice")
TRAIN_SETS = ("squad-val", "squad-train", "swequad-train")
TRAIN_LIMITS = {"squad-val": 150, "squad-train": 200, "swequad-train": 150}  # per answerable / unanswerable
SEED = 10


def squad_articles(bench: Path, split: str) -> evalsets.Collection:
    """Like evalsets.squad_dev, for the articles of another split that have unanswerable questions."""
    unanswerable = [r for r in evalsets.read_jsonl(bench / "squad_v2_sv_dev_unanswerable.jsonl")
                    if evalsets.squad_split(r["category"]) == split]
    articles = {r["category"] for r in unanswerable}
    answerable = [r for r in evalsets.read_jsonl(bench / "squad_v2_sv_dev.jsonl") if r["category"] in articles]
    files = evalsets.passages_by_text(answerable, "passage_id")
    for r in unanswerable:
        text = evalsets.passage_text(r)
        files.setdefault(text, f"squadsv-{split}-u{hashlib.sha1(text.encode()).hexdigest()[:10]}.txt")
    questions = [evalsets.span_question(r, files[evalsets.passage_text(r)]) for r in answerable]
    questions += [evalsets.unanswerable_question(r) for r in unanswerable]
    return evalsets.Collection({name: text for text, name in files.items()}, questions)


def swequad_train(bench: Path) -> evalsets.Collection:
    dev = evalsets.read_jsonl(bench / "swequad_mc_dev.jsonl")
    train = evalsets.read_jsonl(bench / "swequad_mc_train.jsonl")
    kept = [r for r in train if evalsets.swequad_train_split(r["passage_id"]) == "train"]
    return evalsets.span_collection(kept, dev + train)


def prepare(name: str, work_root: Path, limit: int | None = None) -> evalsets.EvalSet:
    if name in evalsets.SETS:  # the dev sets and their committed slices, as `assistant eval` builds them
        return evalsets.prepare(name, work_root, limit=limit)
    bench = evalsets.require_bench()
    collection = {"squad-val": lambda: squad_articles(bench, "val"),
                  "squad-train": lambda: squad_articles(bench, "train"),
                  "swequad-train": lambda: swequad_train(bench)}[name]()
    work = work_root / ("swequad-mc" if name == "swequad-train" else name)
    corpus = evalsets.write_corpus(collection.passages, work / "corpus")
    questions = evalsets.sample(collection.questions, TRAIN_LIMITS[name], SEED)
    return evalsets.EvalSet(name, name, questions, corpus, work / "index")


ANSWERABILITY_FEATURES = [
    "best_logodds", "margin", "answering_sentences", "best_cosine", "top_cosine", "fused",
    "cover_sentence", "cover_passage", "missing_passage", "cover_top", "asks_number", "negation_unmatched",
    "content_words",
]
_NEGATION = {"inte", "ej", "aldrig", "ingen", "inget", "inga", "icke", "not", "never"}
PREFIX = 5  # a content word of at least this many letters matches any word containing its first letters


def content_words(text: str) -> list[str]:
    """Lowercased words that are not Swedish stop words (the question words "vad", "vilka" … included)."""
    return [w for w in words(text) if w not in STOPWORDS and w not in _NEGATION and len(w) > 1]


def coverage(asked: Sequence[str], text: str) -> tuple[float, int]:
    """Share and number of the question's content words found in the text: exact for short words, and for a
    word of PREFIX letters or more its stem-like start anywhere in a word ("kommunerna" ~ "kommunens",
    "upphandling" ~ "direktupphandlingen"): no lemmatiser, compounds still match."""
    if not asked:
        return 1.0, 0
    found = set(words(text))
    joined = " " + " ".join(found) + " "
    missing = 0
    for w in asked:
        key = w[: max(PREFIX, len(w) - 2)] if len(w) >= PREFIX else w
        missing += not (w in found or (len(w) >= PREFIX and key in joined))
    return 1 - missing / len(asked), missing


def answerability_features(question: str, hits: Sequence[Hit], scored: Sequence[policy.Candidate],
                           best: policy.Candidate | None = None) -> list[float]:
    """ANSWERABILITY_FEATURES of one question, from the reranked passages and the scored candidates."""
    ranked = sorted(scored, key=lambda c: -c.score)
    best = best or ranked[0]
    second = next((c for c in ranked if c is not best), None)
    top = policy.log_odds(best.score)
    passage_best = max(c.score for c in scored if c.hit.chunk.id == best.hit.chunk.id)
    fused = best.hit.score - policy.RERANK_WEIGHT * policy.log_odds(passage_best)  # the score before rerank added it
    asked = content_words(question)
    chunk = best.hit.chunk
    cover_sentence, _ = coverage(asked, best.text)
    cover_passage, missing = coverage(asked, f"{chunk.title} {chunk.section} {chunk.text}")
    cover_top, _ = coverage(asked, " ".join(f"{h.chunk.title} {h.chunk.text}" for h in hits[:3]))
    negated = bool(_NEGATION & set(words(question)))
    return [
        top,
        top - (policy.log_odds(second.score) if second else policy.log_odds(0.0)),
        math.log1p(sum(c.score >= 0.1 for c in scored)),
        best.hit.dense or 0.0,
        max((h.dense or 0.0) for h in policy.read_passages(hits)) if hits else 0.0,
        fused,
        cover_sentence,
        cover_passage,
        float(missing),
        cover_top,
        float(policy.asked_number(question) is not None),
        float(negated and not (_NEGATION & set(words(chunk.text)))),
        math.log1p(len(asked)),
    ]


def answerable_probability(question: str, hits: Sequence[Hit], scored: Sequence[policy.Candidate],
                           best: policy.Candidate | None = None) -> float:
    """P(answerable) of the gate's regression, 1.0 when no gate is set."""
    model = GATE["model"]
    if model is None:
        return 1.0
    x = np.array(answerability_features(question, hits, scored, best))
    z = float(x @ np.array(model["weights"]) + model["bias"])
    return 1 / (1 + math.exp(-z))


# The rule under test, as it would sit in policy.decide: after the policy has chosen its best sentence
# (threshold and number rule), refuse when P(answerable) < GATE["threshold"].
GATE: dict = {"model": None, "threshold": 0.0}
_DECIDE = policy.decide


def gated_decide(hits: list[Hit], scored: list[policy.Candidate], question: str = "") -> policy.Decision:
    decision = _DECIDE(hits, scored, question)
    if (decision.answer and GATE["model"] is not None
            and answerable_probability(question, hits, scored, decision.sentences[0]) < GATE["threshold"]):
        return policy.Decision(False, [], hits, best=decision.best, candidates=scored)
    return decision


def feature_rows(records: list[Record]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features as the policy sees them (after rerank), and 1 for answerable questions."""
    import copy

    xs, ys, groups = [], [], []
    for r in records:
        if not r.candidates:  # nothing to read: the policy refuses before any gate
            continue
        hits = copy.deepcopy(r.hits)
        by_id = {h.chunk.id: h for h in hits}
        cands = [policy.Candidate(by_id[c.hit.chunk.id], c.index, c.text, c.score) for c in r.candidates]
        ranked = policy.rerank(hits, cands)
        xs.append(answerability_features(r.question["question"], ranked, cands))
        ys.append(int(bool(r.question.get("answerable", True))))
        groups.append(r.question.get("category", ""))
    return np.array(xs, float), np.array(ys), groups


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


def fit(x: np.ndarray, y: np.ndarray, c: float) -> dict:
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit((x - mean) / std, y)
    # folded into one weight vector over the raw features: policy needs only a dot product
    w = model.coef_[0] / std
    return {"weights": w.tolist(), "bias": float(model.intercept_[0] - (model.coef_[0] * mean / std).sum())}


def main() -> None:
    policy.decide = gated_decide  # run_policy calls policy.decide; only this script's process sees the gate
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/answerability"))
    parser.add_argument("--sets", default=",".join(TRAIN_SETS + DEV_SETS))
    parser.add_argument("--train", default="squad-val", help="sets to fit on (squad-train's scores are biased)")
    parser.add_argument("--c", type=float, default=0.3, help="inverse L2 strength of the regression")
    parser.add_argument("--write", type=Path, default=None, help="write the fitted weights (JSON) here")
    parser.add_argument("--features", default="", help="comma-separated subset of the features to fit on")
    parser.add_argument("--cached-only", action="store_true", help="use the cached (or partial) records only")
    parser.add_argument("--thresholds", default="0,0.1,0.2,0.3,0.35,0.4,0.45,0.5,0.55,0.6")
    parser.add_argument("--rule", action="append", default=[],
                        help="FEATURE[:-]: sweep a one-feature rule instead (refuse below a value; ':-' above)")
    args = parser.parse_args()
    settings = Settings.from_env()
    # the policy's own candidates, as `assistant ask` reads them
    data = {name: collect(name, settings, args.cache, passages=policy.PASSAGES, max_pairs=policy.MAX_PAIRS,
                          prepare=prepare, cached_only=args.cached_only) for name in args.sets.split(",")}
    data = {name: recs for name, recs in data.items() if recs}
    rows = {name: feature_rows(recs) for name, recs in data.items()}
    names = ANSWERABILITY_FEATURES
    train = [n for n in args.train.split(",") if n in rows]
    if not train:  # collection only (the records are cached)
        return
    x = np.vstack([rows[n][0] for n in train])
    y = np.concatenate([rows[n][1] for n in train])
    print(f"training rows {len(y)} ({int(y.sum())} answerable) from {', '.join(train)}")
    for i, f in enumerate(names):
        line = "  ".join(f"{n} {auc(rows[n][0][:, i], rows[n][1]):.3f}" for n in rows if len(set(rows[n][1])) > 1)
        print(f"  AUC {f:22s} {line}")
    used = [names.index(f) for f in args.features.split(",")] if args.features else list(range(len(names)))
    model = fit(x[:, used], y, args.c)
    weights = [0.0] * len(names)  # the features left out weigh nothing
    for i, w in zip(used, model["weights"], strict=True):
        weights[i] = w
    model["weights"] = weights
    print("weights:", json.dumps(dict(zip(names, [round(w, 4) for w in model["weights"]], strict=True))),
          f"bias {model['bias']:.4f}")
    for n in rows:
        if len(set(rows[n][1])) > 1:
            p = rows[n][0] @ np.array(model["weights"]) + model["bias"]
            print(f"  AUC combined {n}: {auc(p, rows[n][1]):.3f}")
    if args.write:
        args.write.write_text(json.dumps({"features": names, **model, "c": args.c, "trained_on": train},
                                         indent=1) + "\n", encoding="utf-8")
    dev = {n: data[n] for n in DEV_SETS if n in data}
    trials = [(f"P(answerable) >= {float(t):.2f}", model, float(t)) for t in args.thresholds.split(",")]
    for rule in args.rule:  # a one-feature rule is a regression with one unit weight: refuse below a value
        feature, _, sign = rule.partition(":")
        i, s = names.index(feature), (-1.0 if sign == "-" else 1.0)
        values = np.concatenate([rows[n][0][:, i] for n in rows])
        qs = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3] if s > 0 else [0.7, 0.8, 0.85, 0.9, 0.95, 0.98]
        for v in sorted(set(np.quantile(values, qs).round(3))):
            w = [0.0] * len(names)
            w[i] = s * 50.0
            trials.append((f"{feature} {'<' if s > 0 else '>'} {v}", {"weights": w, "bias": -s * 50.0 * v}, 0.5))
    for label, trial, t in trials:
        GATE.update(model=trial, threshold=t)
        per_set = {n: run_policy(recs, {}) for n, recs in dev.items()}
        print(f"{label}  objective {objective(per_set):.4f}")
        for n, m in per_set.items():
            kf = "–" if m["key_facts"] is None else f"{m['key_facts']:.3f}"
            rr = "–" if m["refusal_recall"] is None else f"{m['refusal_recall']:.3f}"
            print(f"  {n:12s} key facts {kf}  refused(unans) {rr}  refused(ans) {m['false_refusals']:.3f}  "
                  f"words {m['median_words']}")


if __name__ == "__main__":
    main()
