"""Retrieval and answer metrics, and the evaluation of the project's own question set (`assistant eval`).

A question file is JSON Lines: {"id", "question", "history"?, "lang"?, "audience"?, "answerable",
"gold": [{"source", "section"}], "key_facts": [...]}. A hit is relevant when it comes from a gold file and
its section path ends with (or contains) the gold section.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import cite, loaders
from assistant.types import Hit

KS = (1, 5, 10)


def ranking_metrics(relevance: Sequence[Sequence[bool]], n_relevant: Sequence[int] | None = None) -> dict[str, float]:
    """recall@1/5/10 (a relevant item within the top k), MRR@10 and nDCG@10 (binary gains), averaged.

    ``relevance[i]`` flags the ranked results of query i, already de-duplicated per relevant unit."""
    if not relevance:
        return {f"recall@{k}": 0.0 for k in KS} | {"mrr@10": 0.0, "ndcg@10": 0.0}
    n_relevant = n_relevant or [1] * len(relevance)
    out = {f"recall@{k}": 0.0 for k in KS}
    mrr = ndcg = 0.0
    for flags, n_rel in zip(relevance, n_relevant, strict=True):
        first = next((i for i, f in enumerate(flags) if f), None)
        for k in KS:
            out[f"recall@{k}"] += first is not None and first < k
        if first is not None and first < 10:
            mrr += 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, f in enumerate(flags[:10]) if f)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(max(n_rel, 1), 10)))
        ndcg += dcg / ideal
    n = len(relevance)
    out = {k: v / n for k, v in out.items()}
    out["mrr@10"] = mrr / n
    out["ndcg@10"] = ndcg / n
    return out


def dedupe_flags(keys: Iterable[Any], is_relevant: Callable[[Any], Any]) -> tuple[list[bool], int]:
    """Relevance flags where each relevant unit counts once (a passage split into chunks is one answer).

    ``is_relevant(key)`` returns the relevant unit's id or None."""
    seen: set = set()
    flags = []
    for key in keys:
        unit = is_relevant(key)
        if unit is not None and unit not in seen:
            seen.add(unit)
            flags.append(True)
        elif unit is None:
            flags.append(False)
    return flags, len(seen)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[i]


# --- the project's own question set -----------------------------------------------------------

_WS = re.compile(r"[\s\u00a0\u202f]+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def load_questions(path: Path) -> list[dict]:
    questions = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                questions.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: invalid JSON: {exc}") from exc
    return questions


def gold_unit(hit: Hit, gold: list[dict]) -> str | None:
    parts = [p.strip() for p in hit.chunk.section.split(">")]
    for g in gold:
        if hit.chunk.source != g["source"]:
            continue
        section = g.get("section") or ""
        if not section or section.strip() in parts:
            return f"{g['source']}#{section}"
    return None


@dataclass
class EvalReport:
    n_questions: int
    retrieval: dict[str, float]
    key_fact_coverage: float
    citation_validity: float
    citations_checked: int
    refusal_precision: float
    refusal_recall: float
    answered_correct_rate: float
    latency_ms: dict[str, float]
    per_question: list[dict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["per_question"] = self.per_question
        return d

    def lines(self) -> list[str]:
        r = self.retrieval
        return [
            f"Frågor: {self.n_questions}",
            f"Återvinning (besvarbara): R@1 {r['recall@1']:.3f}  R@5 {r['recall@5']:.3f}  "
            f"R@10 {r['recall@10']:.3f}  MRR@10 {r['mrr@10']:.3f}  nDCG@10 {r['ndcg@10']:.3f}",
            f"Nyckelfakta i svaren: {self.key_fact_coverage:.3f}",
            f"Giltiga citat: {self.citation_validity:.3f} ({self.citations_checked} kontrollerade)",
            f"Avböjanden: precision {self.refusal_precision:.3f}  recall {self.refusal_recall:.3f}",
            f"Besvarade utan avböjande (besvarbara): {self.answered_correct_rate:.3f}",
            f"Svarstid: p50 {self.latency_ms['p50']:.0f} ms  p95 {self.latency_ms['p95']:.0f} ms",
        ]


def evaluate(assistant, questions: list[dict], progress: Callable[[int, int], None] | None = None) -> EvalReport:
    relevance, n_rel = [], []
    facts_hit = facts_total = 0
    cites_ok = cites_total = 0
    tp = fp = fn = 0
    answered = answerable = 0
    latencies = []
    per_question = []
    limits = loaders.Limits.from_settings(assistant.settings)
    for i, q in enumerate(questions):
        if progress:
            progress(i, len(questions))
        history = q.get("history") or []
        gold = q.get("gold") or []
        row: dict[str, Any] = {"id": q.get("id"), "question": q["question"]}
        if q.get("answerable", True) and gold:
            hits, _ = assistant.search(q["question"], k=10, history=history)
            flags, _ = dedupe_flags(hits, lambda h, g=gold: gold_unit(h, g))
            relevance.append(flags)
            n_rel.append(len({(g["source"], g.get("section")) for g in gold}))
            row["gold_rank"] = next((j + 1 for j, f in enumerate(flags) if f), None)
        t = time.perf_counter()
        answer = assistant.ask(q["question"], history=history)
        latencies.append((time.perf_counter() - t) * 1000)
        row["abstained"] = answer.abstained
        for c in answer.citations:
            cites_total += 1
            cites_ok += cite.verify(c, limits=limits) is None
        should_answer = bool(q.get("answerable", True))
        if should_answer:
            answerable += 1
            answered += not answer.abstained
            text = _norm(answer.answer)
            facts = q.get("key_facts") or []
            found_facts = [f for f in facts if _norm(f) in text]
            facts_hit += len(found_facts)
            facts_total += len(facts)
            row["missing_facts"] = [f for f in facts if f not in found_facts]
        tp += answer.abstained and not should_answer
        fp += answer.abstained and should_answer
        fn += (not answer.abstained) and not should_answer
        per_question.append(row)
    if progress:
        progress(len(questions), len(questions))
    return EvalReport(
        n_questions=len(questions),
        retrieval=ranking_metrics(relevance, n_rel),
        key_fact_coverage=facts_hit / facts_total if facts_total else 0.0,
        citation_validity=cites_ok / cites_total if cites_total else 1.0,
        citations_checked=cites_total,
        refusal_precision=tp / (tp + fp) if tp + fp else 1.0,
        refusal_recall=tp / (tp + fn) if tp + fn else 1.0,
        answered_correct_rate=answered / answerable if answerable else 0.0,
        latency_ms={"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                    "mean": statistics.fmean(latencies) if latencies else 0.0},
        per_question=per_question,
    )


def check_thresholds(report: EvalReport, thresholds: dict[str, float]) -> list[str]:
    """Names of the gate's metrics that fell below their floor."""
    flat = {**report.retrieval, "key_fact_coverage": report.key_fact_coverage,
            "citation_validity": report.citation_validity, "refusal_precision": report.refusal_precision,
            "refusal_recall": report.refusal_recall, "answered_correct_rate": report.answered_correct_rate}
    return [f"{k}: {flat[k]:.3f} < {v:.3f}" for k, v in thresholds.items() if k in flat and flat[k] < v]
