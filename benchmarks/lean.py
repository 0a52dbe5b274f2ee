"""Speed and memory of the inference engines (issue 11): torch (sentence-transformers) vs ONNX fp32/int8.

    .venv/bin/python benchmarks/lean.py [--engines torch,onnx,onnx-int8] [--skip cold,serve,encode,relevance]

* cold: ``assistant ask "Vad är direktupphandlingsgränsen?"`` in a new process (index built beforehand
  by the same engine), wall time and peak RSS from /usr/bin/time -v, median of --runs;
* serve: ``assistant serve`` from start until HTTP answers, ``/api/v1/ask`` returned its first answer, then
  the chat (gradio_client: its own handshake included) returned one, and the server's RSS;
* encode: query embedding p50/p95 (eval questions, one at a time) and passage throughput (chunks/s and
  tokens/s) on the shipped corpus chunks;
* relevance: the shipped relevance model over the eval questions' candidate sentences (fp32 and int8,
  ms per question, pairs/s) and ``ask`` p50/p95 in one process with the default settings.

Prints a JSON line per engine as it goes, then one table with each engine's ratio to torch; --json FILE
keeps the figures. Needs 2 free cores for figures worth comparing: the load
average at the start of each part is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.settings import Settings  # noqa: E402

QUESTION = "Vad är direktupphandlingsgränsen?"
ENGINES = ("torch", "onnx", "onnx-int8")


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def env_for(engine: str, index_dir: Path) -> dict[str, str]:
    return {**os.environ, "ASSISTANT_ENGINE": engine, "ASSISTANT_INDEX_DIR": str(index_dir),
            "PYTHONPATH": str(ROOT)}


def build_index(engine: str, index_dir: Path) -> None:
    subprocess.run([str(Path(sys.executable).with_name("assistant")), "index"], env=env_for(engine, index_dir),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cold_ask(engine: str, index_dir: Path, runs: int) -> dict:
    walls, rss = [], []
    for _ in range(runs):
        proc = subprocess.run(["/usr/bin/time", "-v", str(Path(sys.executable).with_name("assistant")), "ask",
                               QUESTION], env=env_for(engine, index_dir), capture_output=True, text=True, check=True)
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):([\d.]+)", proc.stderr)
        walls.append(int(wall.group(1)) * 60 + float(wall.group(2)))
        rss.append(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024)
    return {"cold_ask_s": statistics.median(walls), "cold_ask_s_all": walls, "cold_ask_rss_mb": statistics.median(rss)}


def serve_ready(engine: str, index_dir: Path, port: int) -> dict:
    from gradio_client import Client

    env = env_for(engine, index_dir)
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("assistant")), "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("serve did not start") from None
                time.sleep(0.05)
        http_ready = time.perf_counter() - started
        # first answer over the HTTP API (what an intranet integration waits for), then in the chat
        request = urllib.request.Request(url + "api/v1/ask", data=json.dumps({"question": QUESTION}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            json.load(response)
        api_answered = time.perf_counter() - started
        message = {"role": "user", "content": [{"type": "text", "text": QUESTION}]}
        Client(url, verbose=False).submit([message], api_name="/chat").result(timeout=60)
        answered = time.perf_counter() - started
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"serve_http_s": http_ready, "serve_api_answered_s": api_answered, "serve_answered_s": answered,
            "serve_rss_mb": rss, "serve_peak_rss_mb": hwm}


def encode_figures(engine: str) -> dict:
    import numpy as np

    from assistant import loaders
    from assistant.chunking import chunk_document
    from assistant.embeddings.embedder import _load

    settings = Settings(engine=engine)
    embedder = _load(settings.model, settings.model_cache, None, None, settings.embed_batch_size, engine)
    questions = [json.loads(line)["question"] for line in
                 (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    chunks = []
    for file in loaders.discover(ROOT / "corpus"):
        chunks += chunk_document(loaders.load(file), embedder.count_tokens, settings.chunk_tokens, embedder.max_tokens)
    texts = [c.embedding_text() for c in chunks]
    tokens = sum(embedder.count_tokens(t) for t in texts)
    embedder.embed_queries(["uppvärmning"])
    latencies = []
    for q in questions:
        t = time.perf_counter()
        embedder.embed_queries([q])
        latencies.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    embedder.embed_passages(texts)
    seconds = time.perf_counter() - t
    return {"query_p50_ms": float(np.percentile(latencies, 50)), "query_p95_ms": float(np.percentile(latencies, 95)),
            "encode_chunks_per_s": len(texts) / seconds, "encode_tokens_per_s": tokens / seconds,
            "encode_chunks": len(texts)}


def relevance_figures(index_dir: Path) -> dict:
    """The shipped relevance model as ``ask`` runs it: the eval questions' candidate sentences (at most
    policy.MAX_PAIRS per question), fp32 and int8, milliseconds per question; and ``ask`` end to end."""
    import numpy as np

    from assistant import policy
    from assistant.crossencoder import build_reranker_dir
    from assistant.pipeline import Assistant, retrieval_query
    from assistant.relevance import RelevanceModel

    settings = Settings.from_env(index_dir=index_dir, engine="onnx")
    assistant = Assistant(settings)
    questions = [json.loads(line) for line in
                 (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    work = [(q["question"], policy.candidates(assistant.retriever.search(
        retrieval_query(q["question"], q.get("history") or []), k=policy.PASSAGES + policy.READ_EXTRA).hits))
            for q in questions]
    folder = build_reranker_dir(settings.model_cache)
    out: dict = {"relevance_pairs_per_question": float(np.mean([len(c) for _, c in work]))}
    for variant in ("onnx", "onnx-int8"):
        model = RelevanceModel(folder, variant, settings.model_cache)
        model.score(*work[0])
        times = []
        for question, cands in work:
            t = time.perf_counter()
            model.score(question, cands)
            times.append((time.perf_counter() - t) * 1000)
        pairs = sum(len(c) for _, c in work)
        out[f"relevance_{variant}_p50_ms"] = float(np.percentile(times, 50))
        out[f"relevance_{variant}_p95_ms"] = float(np.percentile(times, 95))
        out[f"relevance_{variant}_pairs_per_s"] = pairs / (sum(times) / 1000)
    assistant.ask(questions[0]["question"])
    asks = []
    for q in questions:
        t = time.perf_counter()
        assistant.ask(q["question"], q.get("history") or [])
        asks.append((time.perf_counter() - t) * 1000)
    out["ask_p50_ms"] = float(np.percentile(asks, 50))
    out["ask_p95_ms"] = float(np.percentile(asks, 95))
    out["relevance_engine"] = settings.relevance_engine
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--skip", default="", help="comma-separated: cold, serve, encode, relevance")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=7911)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lean-bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    args.work.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    for engine in args.engines.split(","):
        row: dict = {}
        index_dir = args.work / f"index-{engine}"
        if not ({"cold", "serve"} <= skip):
            build_index(engine, index_dir)
        if "cold" not in skip:
            row["load_cold"] = load()
            row.update(cold_ask(engine, index_dir, args.runs))
        if "serve" not in skip:
            row["load_serve"] = load()
            row.update(serve_ready(engine, index_dir, args.port))
        if "encode" not in skip:
            row["load_encode"] = load()
            row.update(encode_figures(engine))
        figures[engine] = row
        print(engine, json.dumps(row), flush=True)
    if "relevance" not in skip:
        index_dir = args.work / "index-onnx"
        build_index("onnx", index_dir)
        figures["relevance"] = {"load": load(), **relevance_figures(index_dir)}
        print("relevance", json.dumps(figures["relevance"]), flush=True)
    print(summary(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


SUMMARY = (  # (key, label, lower is better)
    ("cold_ask_s", "cold `ask`, s", True),
    ("cold_ask_rss_mb", "cold `ask` peak RSS, MB", True),
    ("serve_http_s", "`serve` start → HTTP up, s", True),
    ("serve_api_answered_s", "`serve` start → first /api/v1/ask answer, s", True),
    ("serve_rss_mb", "serving RSS, MB", True),
    ("query_p50_ms", "query embedding p50, ms", True),
    ("query_p95_ms", "query embedding p95, ms", True),
    ("encode_chunks_per_s", "passage embedding, chunks/s", False),
)


def summary(figures: dict) -> str:
    """The engines side by side, each as a ratio to torch (the path issue 11 started from) when it ran:
    "3.1× better" reads the same for times, memory and throughput."""
    engines = [e for e in figures if e != "relevance"]
    lines = ["| measure | " + " | ".join(engines) + " |", "|---" * (len(engines) + 1) + "|"]
    for key, label, lower in SUMMARY:
        if not any(key in figures[e] for e in engines):
            continue
        cells = []
        base = figures.get("torch", {}).get(key)
        for e in engines:
            value = figures[e].get(key)
            if value is None:
                cells.append("–")
                continue
            cell = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
            if base and e != "torch" and value:
                cell += f" ({(base / value if lower else value / base):.1f}× better)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
