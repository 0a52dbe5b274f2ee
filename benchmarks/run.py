"""One run, all figures: speed and memory of the pipeline, and retrieval quality against baselines.

    .venv/bin/python benchmarks/run.py [--sets swefaq,swequad,eval] [--squad] [--work DIR]

Speed (issue 2): indexing throughput vs the raw model's encode throughput on the same texts; search and
ask latency p50/p95 vs the raw query-embedding time; CLI cold start; peak RSS.
Quality (issues 2, 5): recall@1/5/10, MRR@10, nDCG@10 on SweFAQ dev (answers indexed as documents),
SweQUAD-MC dev (passages chunked) and the project's eval set, for BM25 alone (our Swedish lexical index),
dense alone (a plain LangChain Chroma retriever with the same model and chunks) and ours (hybrid), with
search latency p50/p95 of each. Benchmarks read ../shared/bench; the product never does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import evalsets  # noqa: E402
from assistant.evaluation import dedupe_flags, gold_match, load_questions, percentile, ranking_metrics  # noqa: E402
from assistant.pipeline import Assistant, retrieval_query  # noqa: E402
from assistant.retrieval import Retriever  # noqa: E402
from assistant.settings import Settings  # noqa: E402

BENCH = evalsets.bench_dir()


# Our retriever under other settings, each a row of the quality table beside the LangChain baseline.
VARIANTS = {
    "BM25 (Swedish)": {"retrieval": "lexical"},
    "ours (hybrid)": {},
    "ours, RRF fusion": {"fusion": "rrf"},
}


def dataset(name: str, work: Path) -> tuple[Path, list[dict], callable] | None:
    """(corpus folder, queries in the eval question format, relevance(source, section, text, query) -> unit
    id or None). The sets are materialised by assistant.evalsets, as `assistant eval --set` does."""
    if name == "eval":
        qfile = ROOT / "eval" / "questions.jsonl"
        if not qfile.exists():
            return None
        qs = [q for q in load_questions(qfile) if q.get("answerable", True) and q.get("gold")]
        return ROOT / "corpus", qs, relevance
    if name == "swefaq":
        collection = evalsets.swefaq_dev(BENCH)
    elif name in ("swequad", "squad"):  # long passages: the hit is the chunk that holds the short answer
        file = {"swequad": "swequad_mc_dev.jsonl", "squad": "squad_v2_sv_dev.jsonl"}[name]
        collection = evalsets.span_collection(evalsets.read_jsonl(BENCH / file))
    else:
        raise ValueError(name)
    return evalsets.write_corpus(collection.passages, work / name), collection.questions, relevance


def relevance(source: str, section: str, text: str, q: dict) -> str | None:
    return gold_match(source, section, text, q["gold"])


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t) * 1000


def langchain_dense(assistant: Assistant, work: Path, name: str):
    """The baseline: langchain_chroma.Chroma over the same chunks and model, plain similarity search."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma

    chunks = assistant.loaded_index.chunks
    path = Path(tempfile.mkdtemp(prefix=f"lc-{name}-", dir=work))
    client = chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))
    store = Chroma(collection_name="baseline", embedding_function=assistant.embedder, client=client,
                   collection_metadata={"hnsw:space": "cosine"})
    ids = [c.id for c in chunks]
    for start in range(0, len(chunks), 5000):
        part = chunks[start:start + 5000]
        store.add_texts([c.embedding_text() for c in part], ids=ids[start:start + 5000],
                        metadatas=[{"source": c.source, "section": c.section, "text": c.text} for c in part])
    return store.as_retriever(search_kwargs={"k": 10}), path


def quality(name: str, work: Path, settings: Settings, methods: list[str]) -> dict:
    ds = dataset(name, work)
    if ds is None:
        return {}
    corpus, queries, rel = ds
    index_dir = work / f"index-{name}"
    assistant = Assistant(settings.with_(corpus_dirs=(corpus,), index_dir=index_dir))
    report = assistant.index()
    results: dict[str, dict] = {"_index": {"chunks": report.chunks, "seconds": report.seconds,
                                           "queries": len(queries)}}
    lc_path = None
    retrievers = {
        method: Retriever(assistant.loaded_index, assistant.embedder, assistant.settings.with_(**changes))
        for method, changes in VARIANTS.items()
    }
    for method in methods:
        flags_all, n_rel, lat = [], [], []
        if method == "dense (LangChain Chroma)":
            lc_retriever, lc_path = langchain_dense(assistant, work, name)
            lc_retriever.invoke("uppvärmning")
        for q in queries:
            history = q.get("history") or []
            if method == "dense (LangChain Chroma)":
                docs, ms = timed(lc_retriever.invoke, retrieval_query(q["question"], history))
                keys = [(d.metadata["source"], d.metadata["section"], d.metadata["text"]) for d in docs]
            else:
                retriever = retrievers[method]
                query = retrieval_query(q["question"], history)
                result, ms = timed(retriever.search, query, 10)
                keys = [(h.chunk.source, h.chunk.section, h.chunk.text) for h in result.hits]
            flags, _ = dedupe_flags(keys, lambda k, q=q: rel(k[0], k[1], k[2], q))
            flags_all.append(flags)
            n_rel.append(len(q.get("gold") or [None]))
            lat.append(ms)
        m = ranking_metrics(flags_all, n_rel)
        m["p50_ms"], m["p95_ms"] = percentile(lat, 50), percentile(lat, 95)
        results[method] = m
    if lc_path:
        shutil.rmtree(lc_path, ignore_errors=True)
    return results


def speed(work: Path, settings: Settings) -> dict:
    """Index SweFAQ from scratch, compare with raw encode; latency of search/ask vs query embedding."""
    corpus, queries, _ = dataset("swefaq", work)
    index_dir = Path(tempfile.mkdtemp(prefix="speed-", dir=work))
    assistant = Assistant(settings.with_(corpus_dirs=(corpus,), index_dir=index_dir))
    embedder = assistant.embedder
    embedder.embed_queries(["uppvärmning"])
    report = assistant.index()
    texts = [c.embedding_text() for c in assistant.loaded_index.chunks]
    _, raw_ms = timed(embedder.model.encode, [embedder.passage_prefix + t for t in texts],
                      batch_size=settings.embed_batch_size, normalize_embeddings=True)
    out = {
        "index_chunks": report.chunks,
        "index_seconds": report.seconds,
        "index_chunks_per_s": report.chunks / report.seconds,
        "raw_encode_chunks_per_s": len(texts) / (raw_ms / 1000),
    }
    qs = [q["question"] for q in queries]
    raw = [timed(embedder.model.encode, [embedder.query_prefix + q], normalize_embeddings=True)[1] for q in qs]
    search = [timed(assistant.search, q)[1] for q in qs]
    ask = [timed(assistant.ask, q)[1] for q in qs]
    for name, values in (("raw_query_embed", raw), ("search", search), ("ask", ask)):
        out[f"{name}_p50_ms"] = percentile(values, 50)
        out[f"{name}_p95_ms"] = percentile(values, 95)
    # re-index with nothing changed: the incremental path
    out["reindex_unchanged_seconds"] = assistant.index().seconds
    # CLI cold start: a new process that loads the model and the index and answers one search
    cold = []
    env = {**os.environ, "ASSISTANT_INDEX_DIR": str(index_dir), "ASSISTANT_CORPUS_DIRS": str(corpus)}
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "assistant", "search", qs[0], "--json"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold.append(time.perf_counter() - t)
    out["cli_cold_start_s_median"] = statistics.median(cold)
    shutil.rmtree(index_dir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="swefaq,swequad,eval")
    parser.add_argument("--squad", action="store_true", help="also SQuAD_v2_sv dev (5,211 questions)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "samverkansassistenten" / "bench")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()
    if not BENCH.exists():
        sys.exit(f"benchmark data not found at {BENCH}")
    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    figures: dict = {"settings": {k: str(v) for k, v in settings if Settings.model_fields[k].repr}}  # no secrets
    if not args.no_speed:
        figures["speed"] = speed(args.work, settings)
        print("\n== Speed (SweFAQ dev passages, 2 CPU cores) ==")
        for k, v in figures["speed"].items():
            print(f"{k:32s} {v:10.2f}")
    methods = ["BM25 (Swedish)", "dense (LangChain Chroma)", "ours, RRF fusion", "ours (hybrid)"]
    sets = args.sets.split(",") + (["squad"] if args.squad else [])
    figures["quality"] = {}
    for name in sets:
        res = quality(name, args.work, settings, methods)
        if not res:
            print(f"\n(skipped {name}: no data)")
            continue
        figures["quality"][name] = res
        info = res["_index"]
        print(f"\n== {name}: {info['queries']} questions, {info['chunks']} chunks ==")
        print(f"{'method':28s} {'R@1':>6s} {'R@5':>6s} {'R@10':>6s} {'MRR@10':>7s} {'nDCG@10':>8s} "
              f"{'p50 ms':>7s} {'p95 ms':>7s}")
        for method in methods:
            m = res[method]
            print(f"{method:28s} {m['recall@1']:6.3f} {m['recall@5']:6.3f} {m['recall@10']:6.3f} "
                  f"{m['mrr@10']:7.3f} {m['ndcg@10']:8.3f} {m['p50_ms']:7.1f} {m['p95_ms']:7.1f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["peak_rss_mb"] = rss_mb
    print(f"\npeak RSS of this process: {rss_mb:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
