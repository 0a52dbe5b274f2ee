"""Choose the answer policy's constants on several dev sets at once, and print what each choice costs.

    .venv/bin/python benchmarks/tune_policy.py [--sets eval,swequad-dev,squad-dev,swefaq-dev] [--grid]

For every question of every set the expensive part runs once: retrieval (the product's own index of the
set, built with the product's code) and the relevance model over the sentences of the top ``--passages``
fused passages. The records are cached (keyed by set, question count and the model's adapter checksum).
Then assistant.policy's rerank and decide run on them under each combination of constants, and the
figures the README reports come out per set: nDCG@10 and R@1 after reranking, key fact in the answer,
unanswerable refused, answerable refused, median answer words.

A choice that helps one set and hurts the others is a loss: the summary line is the mean over sets of
(key facts + refusal recall - false refusals), with nDCG@10 beside it. The sets are dev sets; nothing here
is trained on, and SQuAD-sv dev articles / SweQUAD-MC dev are never in the relevance model's training data
(assistant/evalsets.py fixes the split).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import answer as extractive  # noqa: E402
from assistant import crossencoder, evalsets, policy  # noqa: E402
from assistant.evaluation import (  # noqa: E402
    contains_fact,
    dedupe_flags,
    gold_unit,
    median_words,
    ranking_metrics,
    refusal_metrics,
)
from assistant.pipeline import Assistant, retrieval_query  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.types import Hit  # noqa: E402

MAX_PASSAGES = 10
MAX_PAIRS = 160


@dataclass
class Record:
    question: dict
    hits: list[Hit]  # fused order, at most MAX_PASSAGES
    candidates: list[policy.Candidate]  # scored sentences of those passages, best passage first


def record(assistant: Assistant, question: dict, passages: int = MAX_PASSAGES, max_pairs: int = MAX_PAIRS) -> Record:
    """One question's fused passages and scored candidate sentences, retrieved as `assistant ask` does."""
    query = retrieval_query(question["question"], question.get("history") or [])
    hits = assistant.retriever.search(query, k=max(assistant.settings.top_k, passages + policy.READ_EXTRA)).hits
    return Record(question, hits, assistant.scored_candidates(query, hits, passages=passages, max_pairs=max_pairs))


def collect(name: str, settings: Settings, cache: Path, limit: int | None = None, passages: int = MAX_PASSAGES,
            max_pairs: int = MAX_PAIRS, prepare: Callable[..., evalsets.EvalSet] = evalsets.prepare,
            cached_only: bool = False) -> list[Record]:
    """Retrieval and the relevance model over the sentences of the top ``passages`` fused passages, once per
    question, cached (keyed by set, question count, what was read and the model: int8 and fp32 scores
    differ, never mixed). Answerable and unanswerable questions alternate and the records so far are saved
    every 20 questions, so a stopped collection resumes, and ``cached_only`` reads a balanced part of it.
    ``prepare(name, work_root, limit=...)`` builds the set (benchmarks/answerability.py adds its own)."""
    adapter = hashlib.sha256((crossencoder.WEIGHTS_DIR / crossencoder.ADAPTER_FILE).read_bytes()).hexdigest()[:12]
    key = hashlib.sha1(f"{name}|{adapter}|{settings.relevance_engine}|{passages}|{max_pairs}|{policy.MIN_WORDS}"
                       f"{'' if limit is None else f'|{limit}'}".encode())
    path = cache / f"{name}-{key.hexdigest()[:12]}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    partial = path.with_suffix(".partial")
    if cached_only:  # what a running or stopped collection has so far
        return pickle.loads(partial.read_bytes()) if partial.is_file() else []
    evalset = prepare(name, settings.evalsets_path, limit=limit)
    assistant = Assistant(evalset.settings_for(settings))
    assistant.index()
    records = pickle.loads(partial.read_bytes()) if partial.is_file() else []
    started = time.perf_counter()
    answerable = [q for q in evalset.questions if q.get("answerable", True)]
    unanswerable = [q for q in evalset.questions if not q.get("answerable", True)]
    mixed = [q for pair in itertools.zip_longest(answerable, unanswerable) for q in pair if q is not None]
    for i, q in enumerate(mixed):
        if i < len(records):
            continue
        records.append(record(assistant, q, passages, max_pairs))
        if (i + 1) % 20 == 0:
            print(f"  {name}: {i + 1}/{len(mixed)} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
            cache.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(pickle.dumps(records))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(records))
    return records


def run_policy(records: list[Record], constants: dict) -> dict:
    """The figures of one set under one choice of constants (policy module attributes)."""
    saved = {k: getattr(policy, k) for k in constants}
    for k, v in constants.items():
        setattr(policy, k, v)
    try:
        relevance, n_rel, facts_hit, facts_total = [], [], 0, 0
        answerable, refused, answers = [], [], []
        for r in records:
            hits = copy.deepcopy(r.hits)
            by_id = {h.chunk.id: h for h in hits}
            top = {h.chunk.id for h in policy.read_passages(hits)}
            kept = [c for c in r.candidates if c.hit.chunk.id in top][: policy.MAX_PAIRS]
            cands = [policy.Candidate(by_id[c.hit.chunk.id], c.index, c.text, c.score) for c in kept]
            ranked = policy.rerank(hits, cands)
            decision = policy.decide(ranked, cands, r.question["question"])
            q = r.question
            gold = q.get("gold") or []
            should = bool(q.get("answerable", True))
            if should and gold:
                flags, _ = dedupe_flags(ranked[:10], lambda h, g=gold: gold_unit(h, g))
                relevance.append(flags)
                n_rel.append(len({(g["source"], g.get("section")) for g in gold}))
            text = extractive.compose(decision.sentences)[0] if decision.answer else ""
            if decision.answer:
                answers.append(text)
            answerable.append(should)
            refused.append(not decision.answer)
            if should:
                facts = q.get("key_facts") or []
                facts_hit += sum(decision.answer and contains_fact(text, f) for f in facts)
                facts_total += len(facts)
        out = {"n": len(records)}
        if relevance:
            m = ranking_metrics(relevance, n_rel)
            out |= {"ndcg@10": m["ndcg@10"], "recall@1": m["recall@1"]}
        refusals = refusal_metrics(answerable, refused)
        out["key_facts"] = facts_hit / facts_total if facts_total else None
        out["false_refusals"] = refusals["false_refusal_rate"]
        out["refusal_recall"] = refusals["refusal_recall"]
        out["median_words"] = median_words(answers)
        return out
    finally:
        for k, v in saved.items():
            setattr(policy, k, v)


def objective(per_set: dict[str, dict]) -> float:
    """Mean over sets of key facts + refusal recall - false refusals (each where the set measures it)."""
    values = []
    for m in per_set.values():
        v = (m["key_facts"] or 0.0) - (m["false_refusals"] or 0.0)
        if m["refusal_recall"] is not None:
            v += m["refusal_recall"]
        values.append(v)
    return statistics.fmean(values)


def fmt(v) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


GRID = {
    "ANSWER_THRESHOLD": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6],
    "RERANK_WEIGHT": [0.0, 0.25, 0.5, 1.0],
    "PASSAGES": [4, 6, 8],
    "NUMBER_RULE": [True, False],
    "YEAR_RULE": [True, False],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="eval,swequad-dev,squad-dev,swefaq-dev")
    parser.add_argument("--limit", type=int, default=None, help="questions per set (answerable/unanswerable each)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tune-policy"))
    parser.add_argument("--grid", action="store_true", help="sweep GRID; else only the current constants")
    parser.add_argument("--grid-json", default=None, help='another grid, e.g. {"MAX_WORDS": [50, 70]}')
    parser.add_argument("--set-const", action="append", default=[], help="NAME=VALUE (JSON) to try")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--engine", default=None, help="relevance engine: onnx or onnx-int8 (default: settings)")
    args = parser.parse_args()
    settings = Settings.from_env(relevance_engine=args.engine)
    data = {name: collect(name, settings, args.cache, args.limit) for name in args.sets.split(",")}
    base = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set_const)}
    grid = json.loads(args.grid_json) if args.grid_json else GRID
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] \
        if args.grid or args.grid_json else [{}]
    results = []
    for combo in combos:
        constants = {**base, **combo}
        per_set = {name: run_policy(recs, constants) for name, recs in data.items()}
        results.append((objective(per_set), constants, per_set))
    results.sort(key=lambda r: -r[0])
    for score, constants, per_set in results[: args.top]:
        print(f"objective {score:.4f}  {json.dumps(constants)}")
        for name, m in per_set.items():
            print(f"  {name:16s} n={m['n']:4d}  nDCG@10 {fmt(m.get('ndcg@10'))}  R@1 {fmt(m.get('recall@1'))}  "
                  f"key facts {fmt(m['key_facts'])}  refused(unans) {fmt(m['refusal_recall'])}  "
                  f"refused(ans) {fmt(m['false_refusals'])}  words {fmt(m['median_words'])}")


if __name__ == "__main__":
    main()
