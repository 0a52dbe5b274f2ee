"""Retrieval and answer metrics, and the evaluation of a question set (`assistant eval`).

A question file is JSON Lines: {"id", "question", "history"?, "lang"?, "audience"?, "answerable",
"gold": [{"source", "section"?, "contains"?}], "key_facts": [...]}. A hit is relevant when it comes from a
gold file, its section path contains the gold section (when one is given) and its text contains the gold
``contains`` span, whitespace-normalised (when one is given: the chunk that holds a short answer).
The external dev sets (assistant.evalsets) are written in this format too.
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
from assistant.text import normalize_ws
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


def refusal_metrics(answerable: Sequence[bool], abstained: Sequence[bool]) -> dict[str, float | None]:
    """The refusal figures of a set, from each question's answerable flag and whether it was refused.

    refusal_precision: refused unanswerable questions / refused questions (1.0 when none was refused);
    refusal_recall: refused / unanswerable; answered_correct_rate and false_refusal_rate: answered and
    refused answerable questions / answerable ones. None when the set has no question of the kind."""
    pairs = list(zip(answerable, abstained, strict=True))
    unanswerable = [refused for should, refused in pairs if not should]
    answerable_refused = [refused for should, refused in pairs if should]
    tp, fp = sum(unanswerable), sum(answerable_refused)
    return {
        "refusal_precision": (tp / (tp + fp) if tp + fp else 1.0) if unanswerable else None,
        "refusal_recall": _ratio(tp, len(unanswerable)),
        "answered_correct_rate": _ratio(len(answerable_refused) - fp, len(answerable_refused)),
        "false_refusal_rate": _ratio(fp, len(answerable_refused)),
    }


def median_words(answers: Sequence[str]) -> float | None:
    """Median length in words of these answers, without the [n] markers; None for no answer."""
    return float(statistics.median(answer_words(a) for a in answers)) if answers else None


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[i]


# --- a question set ------------------------------------------------------------------------------

_WS = re.compile(r"[\s\u00a0\u202f]+")
_MARKER = re.compile(r"\s*\[\d+\]")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def answer_text(answer: str) -> str:
    """The answer as read: without the [n] citation markers."""
    return _MARKER.sub("", answer).strip()


def answer_words(answer: str) -> int:
    return len(answer_text(answer).split())


def contains_fact(answer: str, fact: str) -> bool:
    """The key fact stands in the answer, whitespace- and case-normalised, markers ignored."""
    return _norm(fact) in _norm(answer_text(answer))


def load_questions(path: Path) -> list[dict]:
    questions = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                questions.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: invalid JSON: {exc}") from exc
    return questions


def gold_match(source: str, section: str, text: str, gold: list[dict]) -> str | None:
    """The relevant unit a chunk (its file, section path and text) belongs to, or None."""
    parts = [p.strip() for p in section.split(">")]
    for g in gold:
        if source != g["source"]:
            continue
        want = g.get("section") or ""
        if want and want.strip() not in parts:
            continue
        contains = g.get("contains")
        if contains and normalize_ws(contains) not in normalize_ws(text):
            continue
        return f"{g['source']}#{want}"
    return None


def gold_unit(hit: Hit, gold: list[dict]) -> str | None:
    return gold_match(hit.chunk.source, hit.chunk.section, hit.chunk.text, gold)


# Metrics a thresholds file may name. A number is a floor; {"max": x} (or {"min": x, "max": y}) a ceiling,
# for metrics where lower is better (false_refusal_rate, median_answer_words, latency).
RETRIEVAL_METRICS = (*(f"recall@{k}" for k in KS), "mrr@10", "ndcg@10")
ANSWER_METRICS = ("key_fact_coverage", "citation_validity", "refusal_precision", "refusal_recall",
                  "answered_correct_rate", "false_refusal_rate", "median_answer_words",
                  "latency_p50_ms", "latency_p95_ms")
METRICS = RETRIEVAL_METRICS + ANSWER_METRICS


@dataclass
class EvalReport:
    """What `assistant eval` reports for one set. A metric the set cannot measure is None (no gold
    passages: no retrieval figures; no unanswerable questions: no refusal precision/recall)."""

    n_questions: int
    retrieval: dict[str, float] | None
    key_fact_coverage: float | None  # key facts found in answers / key facts of answerable questions
    citation_validity: float
    citations_checked: int
    refusal_precision: float | None  # refused and unanswerable / refused
    refusal_recall: float | None  # refused / unanswerable
    answered_correct_rate: float | None  # answerable questions answered
    latency_ms: dict[str, float]
    per_question: list[dict] = field(default_factory=list)
    name: str = "eval"
    n_answerable: int = 0
    n_unanswerable: int = 0
    retrieval_questions: int = 0  # answerable questions with gold passages
    false_refusal_rate: float | None = None  # answerable questions refused
    median_answer_words: float | None = None  # answered questions, words without [n] markers
    seconds: dict[str, float] = field(default_factory=dict)  # index / questions, set by the caller

    def metrics(self) -> dict[str, float | None]:
        """Every metric by its thresholds-file name."""
        retrieval = self.retrieval or {}
        return {**{k: retrieval.get(k) for k in RETRIEVAL_METRICS},
                "key_fact_coverage": self.key_fact_coverage, "citation_validity": self.citation_validity,
                "refusal_precision": self.refusal_precision, "refusal_recall": self.refusal_recall,
                "answered_correct_rate": self.answered_correct_rate,
                "false_refusal_rate": self.false_refusal_rate, "median_answer_words": self.median_answer_words,
                "latency_p50_ms": self.latency_ms.get("p50"), "latency_p95_ms": self.latency_ms.get("p95")}

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["per_question"] = self.per_question
        return d

    def lines(self) -> list[str]:
        r = self.retrieval
        lines = [f"Frågor: {self.n_questions} ({self.n_answerable} besvarbara, {self.n_unanswerable} obesvarbara)"]
        if r is not None:
            lines.append(
                f"Återvinning ({self.retrieval_questions} frågor med facit): R@1 {r['recall@1']:.3f}  "
                f"R@5 {r['recall@5']:.3f}  R@10 {r['recall@10']:.3f}  MRR@10 {r['mrr@10']:.3f}  "
                f"nDCG@10 {r['ndcg@10']:.3f}")
        else:
            lines.append("Återvinning: – (inga frågor med facit)")
        lines += [
            f"Nyckelfakta i svaren: {_fmt(self.key_fact_coverage)}",
            f"Giltiga citat: {self.citation_validity:.3f} ({self.citations_checked} kontrollerade)",
            f"Avböjanden: precision {_fmt(self.refusal_precision)}  recall {_fmt(self.refusal_recall)}",
            f"Besvarade utan avböjande (besvarbara): {_fmt(self.answered_correct_rate)}  "
            f"avböjda trots svar: {_fmt(self.false_refusal_rate)}",
            f"Svarslängd (median, besvarade): {_fmt(self.median_answer_words, '.0f')} ord",
            f"Svarstid: p50 {self.latency_ms['p50']:.0f} ms  p95 {self.latency_ms['p95']:.0f} ms",
        ]
        if self.seconds:
            lines.append("Körtid: " + "  ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return lines


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def evaluate(assistant, questions: list[dict], progress: Callable[[int, int], None] | None = None,
             name: str = "eval") -> EvalReport:
    relevance, n_rel = [], []
    facts_hit = facts_total = 0
    cites_ok = cites_total = 0
    outcomes: list[tuple[bool, bool]] = []  # (answerable, refused) per question
    answered_texts: list[str] = []
    latencies: list[float] = []
    per_question = []
    limits = loaders.Limits.from_settings(assistant.settings)
    for i, q in enumerate(questions):
        if progress:
            progress(i, len(questions))
        history = q.get("history") or []
        gold = q.get("gold") or []
        should_answer = bool(q.get("answerable", True))
        row: dict[str, Any] = {"id": q.get("id"), "question": q["question"], "answerable": should_answer}
        t = time.perf_counter()
        # one retrieval and one reading by the relevance model per question, for the ranking and the answer
        answer, hits = assistant.ask_ranked(q["question"], history=history, k=max(KS))
        latencies.append((time.perf_counter() - t) * 1000)
        if should_answer and gold:
            flags, _ = dedupe_flags(hits, lambda h, g=gold: gold_unit(h, g))
            relevance.append(flags)
            n_rel.append(len({(g["source"], g.get("section")) for g in gold}))
            row["gold_rank"] = next((j + 1 for j, f in enumerate(flags) if f), None)
        row["abstained"] = answer.abstained
        row["reason"] = answer.reason
        row["answer"] = answer.answer
        for c in answer.citations:
            cites_total += 1
            cites_ok += cite.verify(c, limits=limits) is None
        if not answer.abstained:
            row["words"] = answer_words(answer.answer)
            answered_texts.append(answer.answer)
        outcomes.append((should_answer, answer.abstained))
        if should_answer:
            facts = q.get("key_facts") or []
            # A refusal lists the nearest passages' titles: it carries no key fact, whatever they say.
            found = [f for f in facts if not answer.abstained and contains_fact(answer.answer, f)]
            facts_hit += len(found)
            facts_total += len(facts)
            row["missing_facts"] = [f for f in facts if f not in found]
        per_question.append(row)
    if progress:
        progress(len(questions), len(questions))
    answerable = sum(should for should, _ in outcomes)
    unanswerable = len(questions) - answerable
    refusals = refusal_metrics([should for should, _ in outcomes], [refused for _, refused in outcomes])
    return EvalReport(
        name=name,
        n_questions=len(questions),
        n_answerable=answerable,
        n_unanswerable=unanswerable,
        retrieval=ranking_metrics(relevance, n_rel) if relevance else None,
        retrieval_questions=len(relevance),
        key_fact_coverage=_ratio(facts_hit, facts_total),
        citation_validity=cites_ok / cites_total if cites_total else 1.0,
        citations_checked=cites_total,
        **refusals,
        median_answer_words=median_words(answered_texts),
        latency_ms={"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                    "mean": statistics.fmean(latencies) if latencies else 0.0},
        per_question=per_question,
    )


def validate_thresholds(thresholds: Any) -> dict[str, tuple[float | None, float | None]]:
    """(floor, ceiling) per metric; a ValueError (Swedish) for a key that names no metric or a bad value,
    so that a misspelt key cannot silently switch a gate off."""
    if not isinstance(thresholds, dict):
        raise ValueError("Tröskelfilen ska vara ett JSON-objekt {mått: lägsta värde}.")
    unknown = sorted(set(thresholds) - set(METRICS))
    if unknown:
        raise ValueError(f"Okänt mått i tröskelfilen: {', '.join(unknown)} (kända mått: {', '.join(METRICS)}).")
    bounds = {}
    for key, value in thresholds.items():
        if isinstance(value, dict) and value and set(value) <= {"min", "max"}:
            low, high = value.get("min"), value.get("max")
        else:
            low, high = value, None
        if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in (low, high)):
            raise ValueError(f"Ogiltig tröskel för {key}: {json.dumps(value)} (ett tal eller {{\"max\": tal}}).")
        bounds[key] = (low, high)
    return bounds


def check_thresholds(report: EvalReport, thresholds: dict[str, Any]) -> list[str]:
    """The gate's metrics that fell below their floor or above their ceiling, or that the set cannot
    measure. Raises ValueError for a key that names no metric."""
    bounds = validate_thresholds(thresholds)
    flat = report.metrics()
    failures = []
    for key, (low, high) in bounds.items():
        value = flat[key]
        if value is None:
            failures.append(f"{key}: mäts inte på det här frågesetet")
        elif low is not None and value < low:
            failures.append(f"{key}: {value:.3f} < {low:.3f}")
        elif high is not None and value > high:
            failures.append(f"{key}: {value:.3f} > {high:.3f}")
    return failures
