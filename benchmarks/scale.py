"""Serving at scale (issue 12, part 4): index throughput, generation open time, search latency and serving
memory for 1k, 10k and 100k chunks, with embedded Chroma and with a Chroma server.

    nice -n 15 .venv/bin/python benchmarks/scale.py [--sizes 1000,10000,100000] [--queries 200]
        [--modes embedded,server] [--work DIR]

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
every vector, the BM25 index built in memory), measured in the same process afterwards (embedded only).
"held after malloc_trim" is the anonymous memory once glibc has returned what the allocator kept from the
questions' transient allocations (parsing Chroma's JSON responses, above all in server mode).

Server mode: each size gets its own ``chroma run --path DIR --host 127.0.0.1 --port <free port>`` (the CLI of
the chromadb package), indexed and served through ``ASSISTANT_CHROMA_URL``; the app's RSS is measured as
above (against a one-chunk index on its own server), and the Chroma server's own RSS, after the questions,
is reported separately. The server is stopped at the end of each size, also on error.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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


def rss(pid: int | str = "self") -> dict[str, int]:
    """Current memory of a process (this one by default) in kB (VmRSS, RssAnon, RssFile) and its peak
    (VmHWM)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _malloc_trim() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        return False
    return True


@contextmanager
def chroma_server(folder: Path, port: int = 0) -> Iterator[tuple[str, int]]:
    """A ``chroma run`` on a loopback port (``port``, or a free one) with its data in ``folder``: (URL, pid);
    stopped on leaving. The same folder and port again is the same server restarted."""
    folder.mkdir(parents=True, exist_ok=True)
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # a file, not a pipe: a chatty server never blocks; appended: a restart keeps what the first run said
    with open(folder / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(folder / "data"),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    try:
        deadline = time.monotonic() + 60
        while not _heartbeat(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not start: {(folder / 'server.log').read_text(errors='replace')}")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def serve(index_dir: Path, questions: list[str], compare: bool, chroma_url: str = "") -> dict:
    """In a fresh process: open the generation, search, report times and memory."""
    from assistant.lexical import LexicalIndex
    from assistant.retrieval import LoadedIndex, Retriever

    embedder = stand_in_embedder()
    settings = Settings(corpus_dirs=(index_dir,), index_dir=index_dir, chroma_url=chroma_url)
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
    # Part of the anonymous memory is the allocator keeping what a question's parsing (Chroma's JSON over
    # HTTP, above all) freed; glibc's malloc_trim hands it back, so the rest is what serving holds
    out["trimmed_mem"] = rss() if _malloc_trim() else out["mem"]
    if compare:  # what the former LoadedIndex held on top: every chunk, every vector, BM25 in memory
        held = (index.chunks, index.vectors, LexicalIndex([c.embedding_text() for c in index.chunks]))
        out["before_mem"] = rss()
        del held
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--modes", default="embedded,server", help="embedded, server or both")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--no-compare", action="store_true", help="skip the 'before' memory figure")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the serving process
    parser.add_argument("--chroma-url", default="", help=argparse.SUPPRESS)  # internal: its server
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"embedded", "server"}:
        parser.error("--modes takes embedded, server or embedded,server")
    bench = evalsets.bench_dir()
    pieces, questions = pieces_and_questions(bench)
    questions = questions[: args.queries]
    if args.serve:
        print(json.dumps(serve(args.serve, questions, not args.no_compare, args.chroma_url)))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    print("Stand-in embedder (hashing, 384 dim): index throughput excludes the real model's cost.")
    print(f"{args.queries} questions from SweQUAD-MC/SQuAD-sv; search times exclude the query embedding; "
          "app RSS in MB above the same process serving a one-chunk index (total / anonymous).")
    for mode in modes:
        rows = [measure(mode, n, work / mode / f"n{n}", pieces, args) for n in [1, *sizes]]  # 1: the baseline
        print_table(mode, rows, args.queries)


def measure(mode: str, n: int, folder: Path, pieces: list[list[str]], args: argparse.Namespace) -> dict:
    """Index n chunks and serve them from a fresh process, in one deployment mode."""
    from assistant.indexer import build_index

    shutil.rmtree(folder, ignore_errors=True)
    write_corpus(folder / "corpus", pieces, n)
    with (chroma_server(folder / "chroma") if mode == "server" else _no_server()) as (url, pid):
        settings = Settings(corpus_dirs=(folder / "corpus",), index_dir=folder / "index", chroma_url=url)
        t = time.perf_counter()
        report = build_index(settings, stand_in_embedder())
        seconds = time.perf_counter() - t
        compare = mode == "embedded" and not args.no_compare  # "before" was embedded-only serving
        served = subprocess.run([sys.executable, __file__, "--serve", str(folder / "index"), "--queries",
                                 str(args.queries), "--chroma-url", url] + ([] if compare else ["--no-compare"]),
                                capture_output=True, text=True)
        if served.returncode:
            raise RuntimeError(f"serving {n} chunks ({mode}) failed:\n{served.stderr}")
        row = json.loads(served.stdout.strip().splitlines()[-1])
        if pid:
            row["server_mem"] = rss(pid)  # after the questions: its HNSW index is loaded
    row.update(index_s=seconds, per_s=report.chunks / seconds, built=report.chunks)
    print(f"  {mode}: {report.chunks} chunks indexed in {seconds:.1f} s", file=sys.stderr, flush=True)
    shutil.rmtree(folder / "corpus")
    return row


@contextmanager
def _no_server() -> Iterator[tuple[str, int]]:
    yield "", 0


def print_table(mode: str, rows: list[dict], queries: int) -> None:
    base, trimmed_base = rows[0]["mem"], rows[0]["trimmed_mem"]
    server = mode == "server"
    print()
    print("Chroma server (`chroma run`, one per size), over HTTP" if server else "Embedded Chroma")
    cols = ["chunks", "index chunks/s", "open ms", "search p50 ms", "search p95 ms", "app RSS above empty MB",
            "app anon above empty MB", "of it held after malloc_trim MB",
            "Chroma server RSS MB" if server else "before: + anon MB"]
    print("| " + " | ".join(cols) + " |")
    print("|---:" * len(cols) + "|")
    for row in rows[1:]:
        mem = row["mem"]
        if server:
            last = f"{row['server_mem']['VmRSS'] / 1024:.0f}"
        else:
            last = f"{(row['before_mem']['RssAnon'] - mem['RssAnon']) / 1024:.0f}" if "before_mem" in row else "-"
        print(f"| {row['chunks']:,} | {row['per_s']:,.0f} | {row['open_ms']:.0f} | {row['p50']:.1f} | "
              f"{row['p95']:.1f} | {(mem['VmRSS'] - base['VmRSS']) / 1024:.0f} | "
              f"{(mem['RssAnon'] - base['RssAnon']) / 1024:.0f} | "
              f"{(row['trimmed_mem']['RssAnon'] - trimmed_base['RssAnon']) / 1024:.0f} | {last} |")
    if server:
        print(f"(Chroma server serving one chunk: {rows[0]['server_mem']['VmRSS'] / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
