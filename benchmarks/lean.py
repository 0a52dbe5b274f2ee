"""Speed and memory of the inference engines (issue 11): torch (sentence-transformers) vs ONNX fp32/int8.

    .venv/bin/python benchmarks/lean.py [--engines torch,onnx,onnx-int8] [--skip cold,serve,encode,classifier]

* cold: ``assistant ask "Vad är direktupphandlingsgränsen?"`` in a new process (index built beforehand
  by the same engine), wall time and peak RSS from /usr/bin/time -v, median of --runs;
* serve: ``assistant serve`` from start until the chat API returned its first answer, and the server's RSS;
* encode: query embedding p50/p95 (eval questions, one at a time) and passage throughput (chunks/s and
  tokens/s) on the shipped corpus chunks;
* classifier: pairs/s and ms per call for 40 (question, sentence) pairs of ~60 tokens, with an XLM-R
  sequence classifier on the e5 weights (random head), full 12 layers and truncated to 6, fp32 and int8.

Prints one table; --json FILE keeps the figures. Needs 2 free cores for figures worth comparing: the load
average at the start of each part is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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
        message = {"role": "user", "content": [{"type": "text", "text": QUESTION}]}
        Client(url, verbose=False).submit([message], api_name="/chat").result(timeout=60)
        answered = time.perf_counter() - started
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"serve_http_s": http_ready, "serve_answered_s": answered, "serve_rss_mb": rss, "serve_peak_rss_mb": hwm}


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


def classifier_figures(work: Path) -> dict:
    """Cross-encoder shaped models on the e5 weights: export once (torch), then time the lean runtime."""
    import numpy as np

    from assistant.embeddings import onnx_engine
    from assistant.embeddings.e5_offline import build_model_dir
    from assistant.text import split_sentences

    model_dir = build_model_dir(Settings().model_cache)
    sentences = [s for f in loaders_corpus() for s in split_sentences(f)]
    questions = [json.loads(line)["question"] for line in
                 (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    out: dict = {}
    for layers in (12, 6):
        folder = work / f"e5-classifier-{layers}"
        if not (folder / "config.json").exists():
            make_classifier(model_dir, folder, layers)
        onnx_engine.ensure_exported(folder, "classifier")
        for variant in ("onnx", "onnx-int8"):
            model = onnx_engine.load_classifier(folder, variant)
            pairs = [(questions[i % len(questions)], s) for i, s in enumerate(sentences)
                     if 45 <= model.count_tokens(questions[i % len(questions)] + " " + s) <= 75][:40]
            tokens = [model.count_tokens(a + " " + b) for a, b in pairs]
            model.predict(pairs)
            calls = []
            for _ in range(10):
                t = time.perf_counter()
                model.predict(pairs)
                calls.append((time.perf_counter() - t) * 1000)
            key = f"classifier_{layers}l_{variant}"
            out[key] = {"pairs": len(pairs), "mean_tokens": float(np.mean(tokens)),
                        "ms_per_40_p50": float(np.percentile(calls, 50)),
                        "ms_per_40_p95": float(np.percentile(calls, 95)),
                        "pairs_per_s": len(pairs) / (np.percentile(calls, 50) / 1000)}
    return out


def loaders_corpus() -> list[str]:
    from assistant import loaders

    return ["\n".join(b.text for b in loaders.load(f).blocks) for f in loaders.discover(ROOT / "corpus")]


def make_classifier(model_dir: Path, out: Path, layers: int) -> None:
    import torch
    from transformers import AutoConfig, XLMRobertaForSequenceClassification

    config = AutoConfig.from_pretrained(str(model_dir), num_labels=1, num_hidden_layers=layers)
    config.architectures = ["XLMRobertaForSequenceClassification"]
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification.from_pretrained(str(model_dir), config=config, dtype=torch.float32)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(model_dir / name, out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--skip", default="", help="comma-separated: cold, serve, encode, classifier")
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
    if "classifier" not in skip:
        figures["classifier"] = {"load": load(), **classifier_figures(args.work)}
        print("classifier", json.dumps(figures["classifier"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
