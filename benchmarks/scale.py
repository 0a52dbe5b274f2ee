"""Serving at scale (issue 12, part 4): index throughput, generation open time, search latency and serving
memory for 1k, 10k and 100k chunks, embedded Chroma.

    nice -n 15 .venv/bin/python benchmarks/scale.py [--sizes 1000,10000,100000] [--queries 200] [--work DIR]

Passages are SweQUAD-MC (training + dev) and SQuAD-sv (dev) from ../shared/bench, cut into pieces of at
most ~100 words, plus deterministic variants (sentences reordered, a sentence of another piece added) to
reach the count; ten pieces per Markdown file, one section each, so one piece is one chunk. Questions
are the sets' own. The embedder is a STAND-IN: the deterministic hashing embedder of
assistant.embeddings.fake (words hashed into a fixed random projection, 384 dimensions), so that 100k
chunks embed in seconds; embedding time with the real model is in benchmarks/run.py, and search latency
here excludes the query embedding anyway.

Each size is served by a fresh process; its RSS is reported above the same process serving a one-chunk
index, in total and anonymous (private) memory: memory-mapped summaries count in RSS only as file pages
the kernel can drop. "before" is the extra anonymous memory the former serving loaded on top (every chunk,
every vector, the BM25 index built in memory), measured in the same process afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import re
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
from assistant.embeddings import Embedder  # noqa: E402
from assistant.embeddings.fake import fake_embedder  # noqa: E402
from assistant.settings import Settings  # noqa: E402

PER_FILE = 10
PIECE_WORDS = 100


def stand_in_embedder() -> Embedder:
    # words only, as when these figures were measured; the tests' stand-in adds character n-grams
    return fake_embedder(ngrams=(), name="hashing-stand-in")


def pieces_and_questions(bench: Path) -> tuple[list[list[str]], list[str]]:
    """Passages cut into pieces (lists of sentences, at most PIECE_WORDS words), and the questions."""
    records = []
    for name in ("swequad_mc_train.jsonl", "swequad_mc_dev.jsonl", "squad_v2_sv_dev.jsonl"):
        records.extend(evalsets.read_jsonl(bench / name))
    passages = list(dict.fromkeys(r["answer"] for r in records))
    pieces: list[list[str]] = []
    for passage in passages:
        piece: list[str] = []
        for sentence in re.split(r"(?<=[.!?])\s+|\r?\n+", passage):
            sentence = sentence.strip()
            if not sentence:
                continue
            if piece and len(" ".join([*piece, sentence]).split()) > PIECE_WORDS:
                pieces.append(piece)
                piece = []
            piece.append(" ".join(sentence.split()[:PIECE_WORDS]))
        if piece:
            pieces.append(piece)
    questions = list(dict.fromkeys(r["question"] for r in records))
    random.Random(3).shuffle(questions)
    return pieces, questions


def piece_text(pieces: list[list[str]], i: int) -> str:
    """Piece i: the real pieces first, then variants of them (reordered, plus a sentence of another)."""
    base = pieces[i % len(pieces)]
    variant = i // len(pieces)
    if variant == 0:
        return " ".join(base)
    rng = random.Random(i)
    sentences = list(base)
    rng.shuffle(sentences)
    other = pieces[rng.randrange(len(pieces))]
    text = " ".join([*sentences, rng.choice(other)])
    return " ".join(text.split()[: PIECE_WORDS + 20])


def write_corpus(folder: Path, pieces: list[list[str]], n: int) -> None:
    folder.mkdir(parents=True)
    for f in range(0, n, PER_FILE):
        sections = [f"## Del {i}\n\n{piece_text(pieces, i)}\n" for i in range(f, min(f + PER_FILE, n))]
        (folder / f"dok-{f // PER_FILE:06d}.md").write_text(f"# Dokument {f // PER_FILE}\n\n" + "\n".join(sections),
                                                            encoding="utf-8")


def rss() -> dict[str, int]:
    """Current memory of this process in kB (VmRSS, RssAnon, RssFile) and its peak (VmHWM)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def serve(index_dir: Path, questions: list[str], compare: bool) -> dict:
    """In a fresh process: open the generation, search, report times and memory."""
    from assistant.lexical import LexicalIndex
    from assistant.retrieval import LoadedIndex, Retriever

    embedder = stand_in_embedder()
    settings = Settings(corpus_dirs=(index_dir,), index_dir=index_dir)
    embedder.embed_queries(["uppvärmning"])  # the projection is resident before the baseline
    t = time.perf_counter()
    index = LoadedIndex.open(settings, embedder)
    open_ms = (time.perf_counter() - t) * 1000
    retriever = Retriever(index, embedder, settings)
    latencies = []
    for q in questions:
        t = time.perf_counter()
        result = retriever.search(q)
        latencies.append((time.perf_counter() - t) * 1000 - result.timings_ms["embed_query"])
    latencies.sort()
    out = {"chunks": index.size, "open_ms": open_ms, "p50": statistics.median(latencies),
           "p95": latencies[int(0.95 * (len(latencies) - 1))], "mem": rss()}
    if compare:  # what the former LoadedIndex held on top: every chunk, every vector, BM25 in memory
        held = (index.chunks, index.vectors, LexicalIndex([c.embedding_text() for c in index.chunks]))
        out["before_mem"] = rss()
        del held
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--no-compare", action="store_true", help="skip the 'before' memory figure")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the serving process
    args = parser.parse_args()
    bench = evalsets.bench_dir()
    pieces, questions = pieces_and_questions(bench)
    questions = questions[: args.queries]
    if args.serve:
        print(json.dumps(serve(args.serve, questions, not args.no_compare)))
        return

    from assistant.indexer import build_index

    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    embedder = stand_in_embedder()
    rows = []
    for n in [1] + [int(s) for s in args.sizes.split(",")]:  # 1: the empty-index baseline process
        folder = work / f"n{n}"
        shutil.rmtree(folder, ignore_errors=True)
        write_corpus(folder / "corpus", pieces, n)
        settings = Settings(corpus_dirs=(folder / "corpus",), index_dir=folder / "index")
        t = time.perf_counter()
        report = build_index(settings, embedder)
        seconds = time.perf_counter() - t
        served = subprocess.run([sys.executable, __file__, "--serve", str(folder / "index"), "--queries",
                                 str(args.queries)] + (["--no-compare"] if args.no_compare else []),
                                capture_output=True, text=True, check=True)
        row = json.loads(served.stdout.strip().splitlines()[-1])
        row.update(index_s=seconds, per_s=report.chunks / seconds, built=report.chunks)
        rows.append(row)
        print(f"  {report.chunks} chunks: indexed in {seconds:.1f} s", file=sys.stderr, flush=True)
        shutil.rmtree(folder / "corpus")

    base = rows[0]["mem"]
    print("Stand-in embedder (hashing, 384 dim): index throughput excludes the real model's cost.")
    print(f"Embedded Chroma; {args.queries} questions from SweQUAD-MC/SQuAD-sv; search times exclude the query "
          "embedding; RSS in MB above a process serving a one-chunk index (total / anonymous).")
    head = ("| chunks | index chunks/s | open ms | search p50 ms | search p95 ms | RSS above empty MB | "
            "anon above empty MB | before: + anon MB |")
    print(head)
    print("|---:" * 8 + "|")
    for row in rows[1:]:
        mem = row["mem"]
        before = (f"{(row['before_mem']['RssAnon'] - mem['RssAnon']) / 1024:.0f}" if "before_mem" in row else "-")
        print(f"| {row['chunks']:,} | {row['per_s']:,.0f} | {row['open_ms']:.0f} | {row['p50']:.1f} | "
              f"{row['p95']:.1f} | {(mem['VmRSS'] - base['VmRSS']) / 1024:.0f} | "
              f"{(mem['RssAnon'] - base['RssAnon']) / 1024:.0f} | {before} |")


if __name__ == "__main__":
    main()
