"""Experiment (not shipped): does a LoRA adapter trained on Swedish QA data improve dense retrieval?

multilingual-e5-small is the only model available offline, and its Swedish question -> passage
matching limits everything after it. This trains LoRA factors (peft) on the training data that
../shared/bench/README.md names for adapting a model (SweQUAD-MC training split, optionally
SQuAD_v2_sv) and prints dense MRR@10 / R@1 on the held-out SweFAQ and SweQUAD-MC dev sets every
--eval-every steps, against the base model at step 0.

Result on 2026-11-28 (2 CPU cores; README "Experiments that did not help"): every variant lowered
SweFAQ dev, so nothing is shipped. Query-side only (passages keep base vectors, full softmax over
1,139 training chunks; lr 1e-4, scale 20, rank 8): SweFAQ MRR@10 0.714 -> 0.710 (14 steps) -> 0.636
(42 steps), SweQUAD-MC 0.810 -> 0.804; with 5,039 SQuAD_v2_sv pairs added: 0.714 -> 0.647 at 40 steps. Both sides
(in-batch + one hard negative, batch 16, ~15 s/step): 0.714 -> 0.717 (15) -> 0.696 (30), SweQUAD-MC
0.810 -> 0.822 -> 0.777. Try again with more in-domain training data or a larger base model.

    .venv/bin/pip install peft
    .venv/bin/python benchmarks/train_adapter.py --eval-every 14 [--symmetric] [--squad 5211]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "bench"
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from assistant import loaders  # noqa: E402
from assistant.chunking import chunk_document  # noqa: E402
from assistant.embeddings.e5_offline import build_model_dir  # noqa: E402
from assistant.settings import Settings  # noqa: E402

# every linear layer of the encoder (attention and feed-forward); the pooler is unused by mean pooling
TARGETS = (
    r".*encoder\.layer\.\d+\."
    r"(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
)


def _ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def chunked_pairs(
    records: list[dict], count_tokens, target_tokens: int, rng: random.Random, keep_all: bool = False
) -> list[dict]:
    """(query, positive chunk, hard negative chunk) triples; the positive is the chunk holding the
    short answer, the hard negative another chunk of the same passage (or None) - the same chunking
    and embedding text the index uses, so training sees what retrieval sees."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        by_text: dict[str, str] = {}
        for r in records:
            text = r["answer"].replace("\r\n", "\n")
            if text not in by_text:
                by_text[text] = f"{r.get('passage_id', len(by_text))}.txt"
                (folder / by_text[text]).write_text(text, encoding="utf-8")
        chunks_of: dict[str, list[str]] = {}
        for file in loaders.discover(folder):
            doc = loaders.load(file)
            chunks = chunk_document(doc, count_tokens, target_tokens, 510)
            chunks_of[file.path.name] = [(c.embedding_text(), _ws(c.text)) for c in chunks]
    pairs = []
    for r in records:
        chunks = chunks_of[by_text[r["answer"].replace("\r\n", "\n")]]
        short = _ws(r.get("short_answer") or "")
        holding = [i for i, (_, plain) in enumerate(chunks) if short and short in plain] if short else [0]
        if len(chunks) == 1:
            holding = [0]
        if len(holding) != 1:
            continue  # answer split across chunks (or not found): no clean positive
        others = [c for i, (c, _) in enumerate(chunks) if i != holding[0]]
        pairs.append({
            "query": r["question"], "positive": chunks[holding[0]][0],
            "negative": rng.choice(others) if others else None, "group": by_text[r["answer"].replace("\r\n", "\n")],
            "all": [c for c, _ in chunks] if keep_all else None,
        })
    return pairs


def dev_sets(count_tokens, target_tokens: int, rng: random.Random) -> dict[str, tuple[list[dict], list[str]]]:
    """Held-out dev sets (never trained on) to pick the number of steps: (pairs, all chunks of the set)."""
    out = {}
    for name, file in (("swefaq", "swefaq_dev.jsonl"), ("swequad", "swequad_mc_dev.jsonl")):
        pairs = chunked_pairs(read_jsonl(BENCH / file), count_tokens, target_tokens, rng, keep_all=True)
        pool = sorted({c for p in pairs for c in p["all"]})
        out[name] = (pairs, pool)
    return out


def dev_scores(model, sets, cache: dict) -> str:
    """Dense MRR@10 / R@1 of the query encoder against base-model passage vectors."""
    parts = []
    for name, (pairs, pool) in sets.items():
        if name not in cache:
            cache[name] = torch.from_numpy(model.encode(["passage: " + t for t in pool], batch_size=32,
                                                        normalize_embeddings=True, show_progress_bar=False))
        q = torch.from_numpy(model.encode(["query: " + p["query"] for p in pairs], batch_size=64,
                                          normalize_embeddings=True, show_progress_bar=False))
        order = (q @ cache[name].T).argsort(dim=1, descending=True)[:, :10]
        rr, r1 = [], []
        for i, p in enumerate(pairs):
            ranked = [pool[j] for j in order[i].tolist()]
            rank = ranked.index(p["positive"]) + 1 if p["positive"] in ranked else 0
            rr.append(1 / rank if rank else 0.0)
            r1.append(rank == 1)
        parts.append(f"{name} MRR@10 {sum(rr) / len(rr):.3f} R@1 {sum(r1) / len(r1):.3f}")
    return " | ".join(parts)


def batches(pairs: list[dict], size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffled batches with no passage twice: a second question on the same passage would make its
    own positive an in-batch "negative"."""
    pool = pairs[:]
    rng.shuffle(pool)
    out: list[list[dict]] = []
    while pool:
        batch, seen, rest = [], set(), []
        for p in pool:
            if len(batch) < size and p["group"] not in seen:
                batch.append(p)
                seen.add(p["group"])
            else:
                rest.append(p)
        out.append(batch)
        pool = rest
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=int, default=0, help="also train on this many SQuAD_v2_sv questions")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--scale", type=float, default=50.0, help="inverse temperature of the contrastive loss")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--symmetric", action="store_true",
                    help="adapt passages too (in-batch negatives; the index must then be rebuilt)")
    ap.add_argument("--eval-every", type=int, default=14, help="report dev-set figures every N steps")
    args = ap.parse_args()

    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    settings = Settings.from_env()
    model = SentenceTransformer(str(build_model_dir(settings.model_cache)), device="cpu")
    model = model.float()
    model.max_seq_length = 512
    t0 = time.time()
    tok = model.tokenizer

    def count_tokens(text: str) -> int:
        return len(tok("passage: " + text, add_special_tokens=True, verbose=False)["input_ids"])

    pairs = chunked_pairs(read_jsonl(BENCH / "swequad_mc_train.jsonl"), count_tokens, settings.chunk_tokens, rng)
    print(f"SweQUAD-MC train: {len(pairs)} pairs", flush=True)
    if args.squad:
        squad = read_jsonl(BENCH / "squad_v2_sv_dev.jsonl")
        rng.shuffle(squad)
        extra = chunked_pairs(squad[: args.squad], count_tokens, settings.chunk_tokens, rng)
        print(f"SQuAD_v2_sv: {len(extra)} pairs", flush=True)
        pairs += extra

    # Query-side adaptation: passages keep the base model's vectors (so an index built with the base
    # model stays valid and the dense baseline shares them); only the query encoder learns. Passage
    # vectors are computed once, which makes every chunk of the training corpus a negative at every
    # step (full softmax) at the cost of a query-only forward/backward pass.
    texts = sorted({p["positive"] for p in pairs} | {p["negative"] for p in pairs if p["negative"]})
    row = {t: i for i, t in enumerate(texts)}
    model.eval()
    with torch.no_grad():
        passages = torch.from_numpy(model.encode(["passage: " + t for t in texts], batch_size=32,
                                                 normalize_embeddings=True, show_progress_bar=False))
    print(f"{len(texts)} passage chunks embedded in {time.time() - t0:.0f}s", flush=True)

    dev, dev_cache = (dev_sets(count_tokens, settings.chunk_tokens, rng), {}) if args.eval_every else ({}, {})
    if dev:
        print(f"step 0: {dev_scores(model, dev, dev_cache)}", flush=True)

    transformer = model[0]
    config = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.1, target_modules=TARGETS)
    transformer.model = get_peft_model(transformer.model, config)
    transformer.model.print_trainable_parameters()
    params = [p for p in model.parameters() if p.requires_grad]
    plan = [b for _ in range(args.epochs) for b in batches(pairs, args.batch, rng)]
    if args.max_steps:
        plan = plan[: args.max_steps]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    warm = max(1, len(plan) // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (len(plan) - s) / max(1, len(plan) - warm)))
    )

    model.train()
    for step, batch in enumerate(plan):
        features = model.preprocess(["query: " + p["query"] for p in batch])
        q = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
        if args.symmetric:
            docs = [p["positive"] for p in batch] + [p["negative"] for p in batch if p["negative"]]
            features = model.preprocess(["passage: " + t for t in docs])
            d = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
            loss = torch.nn.functional.cross_entropy(args.scale * q @ d.T, torch.arange(len(batch)))
        else:
            target = torch.tensor([row[p["positive"]] for p in batch])
            loss = torch.nn.functional.cross_entropy(args.scale * q @ passages.T, target)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 20 == 0 or step == len(plan) - 1:
            print(f"step {step + 1}/{len(plan)} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
        if dev and ((step + 1) % args.eval_every == 0 or step == len(plan) - 1):
            model.eval()
            if args.symmetric:
                dev_cache.clear()
            print(f"step {step + 1}: {dev_scores(model, dev, dev_cache)}", flush=True)
            model.train()


if __name__ == "__main__":
    main()
