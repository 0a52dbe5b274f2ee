"""The relevance model at run time: (question, sentence) → P(the sentence answers the question).

The shipped adapter is merged into a plain encoder folder once (assistant.crossencoder), exported to ONNX
by the project's lean engine (assistant.embeddings.onnx_engine) and run with ONNX Runtime; the small head
(mean pooling → dense → tanh → one logit) is applied here in numpy. No torch on the query path. Pairs are
encoded by ``crossencoder.encode_pairs``, the one definition training used too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from assistant import crossencoder
from assistant.settings import Settings

log = logging.getLogger(__name__)


class RelevanceModel:
    """Implements policy.SentenceScorer."""

    def __init__(self, folder: Path, variant: str = "onnx", cache: Path | None = None):
        from safetensors.numpy import load_file

        from assistant.embeddings import onnx_engine

        self.folder = Path(folder)
        fmt = json.loads((self.folder / "reranker.json").read_text(encoding="utf-8"))
        self.max_length, self.max_question_tokens = int(fmt["max_length"]), int(fmt["max_question_tokens"])
        out = onnx_engine.ensure_exported(self.folder, "encoder", cache)
        # one intra-op thread per run and the pairs spread over the cores (see ``logits``)
        self.session = onnx_engine.open_session(out, variant, threads=1)
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="relevance")
        self.input_names = [i.name for i in self.session.get_inputs()]
        head = load_file(str(self.folder / crossencoder.HEAD_FILE))
        self.dense_w = head["dense.weight"].astype(np.float32)
        self.dense_b = head["dense.bias"].astype(np.float32)
        self.out_w = head["out_proj.weight"].astype(np.float32)
        self.out_b = head["out_proj.bias"].astype(np.float32)
        # The export's tokenizer: the same ids as training's (crossencoder.load_tokenizer) on the normalised
        # pair texts, and the same loaded copy as the embedder's (onnx_engine.load_tokenizer).
        self.tokenizer = onnx_engine.load_tokenizer(out, None)
        self._lock = threading.Lock()

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One logit per pair of ``crossencoder.pair_inputs`` texts, in input order.

        Each pair is its own run, unpadded, and the runs share the cores (ONNX Runtime releases the GIL).
        One padded batch was slower: every pair is padded to the longest (a question's pairs run from ~30
        to 128 tokens), and two intra-op threads on one small run wait on each other; per pair the CPU time
        of a question's 27 pairs fell from ~790 to ~480 ms (benchmarks/lean.py, README Speed). And a
        sentence's score now depends on nothing but its pair: in a batch, its padding moved the logit by up
        to 1e-6 (fp32), and int8's dynamic activation scales by far more."""
        out = np.zeros(len(pairs), np.float32)
        if not pairs:
            return out
        ids, mask = crossencoder.encode_pairs(self.tokenizer, pairs, self.max_length, self.max_question_tokens)
        lengths = mask.sum(axis=1)

        def run(i: int) -> float:
            n = int(lengths[i])
            feed = {"input_ids": ids[i : i + 1, :n], "attention_mask": mask[i : i + 1, :n],
                    "token_type_ids": np.zeros((1, n), np.int64)}
            states = self.session.run(None, {k: feed[k] for k in self.input_names})[0]
            return float(self._head(states, feed["attention_mask"])[0])

        with self._lock:  # one question's pairs at a time: two questions at once on 2 cores only thrash
            out[:] = list(self._pool.map(run, range(len(pairs))))
        return out

    def _head(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = mask.astype(np.float32)
        pooled = np.einsum("bsd,bs->bd", states, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        hidden = np.tanh(pooled @ self.dense_w.T + self.dense_b)
        return (hidden @ self.out_w.T + self.out_b)[:, 0]

    def score(self, question: str, candidates: Sequence) -> np.ndarray:
        """P(answers) for each policy.Candidate: the sentence read with its document title and section."""
        from assistant.text import without_source_notes  # a named source is no evidence of an answer

        pairs = [crossencoder.pair_inputs(question, without_source_notes(c.text), c.hit.chunk.title,
                                          c.hit.chunk.section) for c in candidates]
        return crossencoder.sigmoid(self.logits(pairs))


def load_relevance_model(settings: Settings) -> RelevanceModel:
    """The shipped model, merged and exported on first use into the model cache (offline); the one a
    ``prefetch`` with the same settings loaded, when there is one."""
    with _PREFETCH_LOCK:
        future = _PREFETCHED.pop(_prefetch_key(settings), None)
    if future is not None:
        try:
            model = future.result()
        except BaseException as exc:  # loaded again below, where the error reaches the caller
            log.debug("prefetch of the relevance model failed: %s", exc)
        else:
            if model is not None:
                return model
    folder = crossencoder.build_reranker_dir(settings.model_cache)
    if settings.relevance_engine not in ("onnx", "onnx-int8"):
        raise ValueError(f"ASSISTANT_RELEVANCE_ENGINE={settings.relevance_engine!r}: välj onnx eller onnx-int8")
    return RelevanceModel(folder, settings.relevance_engine, settings.model_cache)


_PREFETCHED: dict[tuple[Path, str], Future] = {}  # settings → the model a prefetch loads (None: not ready)
_PREFETCH_LOCK = threading.Lock()


def _prefetch_key(settings: Settings) -> tuple[Path, str]:
    return settings.model_cache, settings.relevance_engine


def prefetch(settings: Settings) -> None:
    """Begin loading the relevance model in a background thread (its ONNX session opens in C++ without
    the GIL): called by the CLI before its heavy imports; ``load_relevance_model`` then takes it. Loads
    only a model already merged and exported: a first build stays in the foreground."""
    future: Future = Future()
    with _PREFETCH_LOCK:
        if _PREFETCHED.setdefault(_prefetch_key(settings), future) is not future:
            return  # one prefetch at a time
    # not a daemon: the interpreter waits for it at exit instead of stopping it inside ONNX Runtime
    threading.Thread(target=_prefetch, args=(settings, future), name="relevance-prefetch").start()


def _prefetch(settings: Settings, future: Future) -> None:
    try:
        from assistant.embeddings import onnx_engine

        folder = crossencoder.built_reranker_dir(settings.model_cache)
        ready = (folder is not None and settings.relevance_engine in onnx_engine.VARIANTS
                 and onnx_engine.is_current(folder, "encoder", onnx_engine.export_dir(folder, settings.model_cache)))
        future.set_result(RelevanceModel(folder, settings.relevance_engine, settings.model_cache) if ready else None)
    except BaseException as exc:
        future.set_exception(exc)
