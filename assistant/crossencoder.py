"""Learned Swedish relevance model: does this sentence answer this question? (issue 10)

A cross-encoder on the first ``depth`` layers of the offline multilingual-e5-small: the pair
``<s> query: question </s></s> passage: title > section\\nsentence </s>`` goes through the encoder, the
token states are mean-pooled (attention mask) and a small head (dense → tanh → linear) gives one logit;
``sigmoid`` of it is the probability that the sentence answers the question. Mean pooling, not ``<s>``:
e5 was trained with mean pooling and its ``<s>`` state is the same vector for every input up to layer 8.
Trained by ``benchmarks/train_reranker.py``; the model card is ``assistant/models/reranker/README.md``.

The repository ships only LoRA factors and the head (a few MB, ``assistant/models/reranker``).
:func:`build_reranker_dir` merges them into the base model's weights in numpy (W' = W + scale·B·A) and
writes a plain Hugging Face ``XLMRobertaModel`` folder (``depth`` layers) plus ``head.safetensors`` next to
the base model, so any runtime (torch, ONNX) loads it without peft: logit = head(mean_pool(encoder)).
:func:`pair_inputs` and :func:`encode_pairs` are the one definition of the input format, used by training
and at run time alike. No torch at import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.text import normalize_ws

FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "models" / "reranker"
ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "config.json"
REFERENCE_FILE = "reference_scores.json"  # fixed pairs and their scores, recorded at training time
QUERY_PREFIX = "query: "  # the e5 prefixes: the backbone learnt the two roles with them
PASSAGE_PREFIX = "passage: "
MAX_HEADER_CHARS = 100  # a long title/section path must not crowd out the sentence
# The linear layers of an encoder layer that carry LoRA factors (attention and feed-forward).
LORA_TARGETS = (
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "intermediate.dense", "output.dense",
)
HEAD_KEYS = ("head.dense.weight", "head.dense.bias", "head.out_proj.weight", "head.out_proj.bias")
HEAD_FILE = "head.safetensors"  # in the merged folder: the head's weights (float32), keys without "head."
_BOS, _EOS, _PAD = 0, 2, 1  # XLM-R special token ids (the e5 tokenizer)
_STAMP = "checksums.json"


@dataclass(frozen=True)
class RerankerConfig:
    depth: int  # encoder layers kept (of 12)
    rank: int
    alpha: float
    max_length: int = 128  # tokens of the whole pair, special tokens included
    max_question_tokens: int = 48  # the question is cut first, the sentence keeps the rest
    format_version: int = FORMAT_VERSION

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def load(cls, weights_dir: Path = WEIGHTS_DIR) -> RerankerConfig:
        data = json.loads((Path(weights_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        config = cls(**known)
        if config.format_version != FORMAT_VERSION:
            raise ValueError(f"reranker format {config.format_version}, this code reads {FORMAT_VERSION}")
        return config

    def to_json(self) -> dict:
        return asdict(self)


def header_text(title: str = "", section: str = "") -> str:
    """"title > section" as the chunk header elsewhere in the project, cut at a word near the limit."""
    head = " > ".join(p for p in (normalize_ws(title), normalize_ws(section)) if p)
    if len(head) > MAX_HEADER_CHARS:
        head = head[:MAX_HEADER_CHARS].rsplit(" ", 1)[0] + " …"
    return head


def pair_inputs(question: str, sentence: str, title: str = "", section: str = "") -> tuple[str, str]:
    """The two texts of a (question, sentence) pair; the header is optional (trained with and without)."""
    head = header_text(title, section)
    body = normalize_ws(sentence)
    return QUERY_PREFIX + normalize_ws(question), PASSAGE_PREFIX + (f"{head}\n{body}" if head else body)


def encode_pairs(
    tokenizer, pairs: Sequence[tuple[str, str]], max_length: int = 128, max_question_tokens: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask (int64, right-padded) of pairs from :func:`pair_inputs`.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (the model folder's tokenizer.json). The question keeps
    at most ``max_question_tokens``; the second text is cut at the end to fill ``max_length``.
    """
    if not pairs:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64)
    firsts = tokenizer.encode_batch([a for a, _ in pairs], add_special_tokens=False)
    seconds = tokenizer.encode_batch([b for _, b in pairs], add_special_tokens=False)
    rows = []
    for a, b in zip(firsts, seconds, strict=True):
        qa = a.ids[:max_question_tokens]
        room = max_length - 4 - len(qa)
        rows.append([_BOS, *qa, _EOS, _EOS, *b.ids[:room], _EOS])
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), _PAD, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def load_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# --- merging the shipped adapter into a plain model folder ----------------------------------------


def merged_state(
    base: dict[str, np.ndarray], adapter: dict[str, np.ndarray], config: RerankerConfig
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(encoder weights, head weights): the base model's embeddings and first ``depth`` layers with
    W' = W + scale·B·A merged into every LoRA target (XLMRobertaModel keys), and the trained head.

    Untouched tensors keep the base dtype (fp16); merged ones and the head are float32 so that the
    merge loses nothing against the trained (float32) adapter."""
    out: dict[str, np.ndarray] = {}
    layer_re = re.compile(r"encoder\.layer\.(\d+)\.")
    for key, value in base.items():
        if key.startswith("pooler."):
            continue  # mean pooling: the pooler is unused
        m = layer_re.match(key)
        if m and int(m.group(1)) >= config.depth:
            continue
        out[key] = value
    for layer in range(config.depth):
        for target in LORA_TARGETS:
            stem = f"encoder.layer.{layer}.{target}"
            a, b = adapter[f"{stem}.lora_A"].astype(np.float32), adapter[f"{stem}.lora_B"].astype(np.float32)
            w = base[f"{stem}.weight"].astype(np.float32)
            out[f"{stem}.weight"] = w + np.float32(config.scale) * (b @ a)
    head = {key.removeprefix("head."): adapter[key].astype(np.float32) for key in HEAD_KEYS}
    return out, head


def _hf_config(base_folder: Path, config: RerankerConfig) -> dict:
    base = json.loads((base_folder / "config.json").read_text())
    return {**base, "architectures": ["XLMRobertaModel"], "num_hidden_layers": config.depth,
            "torch_dtype": "float32"}


def _seen(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def is_valid(folder: Path, adapter_sha: str) -> bool:
    """True when the folder was fully built from this adapter and its weights match the stamp.

    A weights file whose size and mtime are those recorded when it was last hashed is not hashed again
    (235 MB: ~0.2 s of every cold start); a touched or copied one is, and then recorded."""
    from assistant.embeddings.e5_offline import sha256_file

    stamp = folder / _STAMP
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
        if recorded["adapter"] != adapter_sha:
            return False
        seen = dict(recorded.get("seen") or {})
        for name in ("model.safetensors", HEAD_FILE):
            now = _seen(folder / name)
            if seen.get(name) != now:
                if sha256_file(folder / name) != recorded[name]:
                    return False
                seen[name] = now
        if seen != recorded.get("seen"):
            with contextlib.suppress(OSError):  # a read-only cache: hashed again next time, still correct
                tmp = stamp.with_name(f"{stamp.name}.tmp-{os.getpid()}-{threading.get_ident()}")
                tmp.write_text(json.dumps({**recorded, "seen": seen}, indent=2))
                tmp.replace(stamp)
        return True
    except (OSError, ValueError, KeyError):
        return False


def built_reranker_dir(cache_dir: Path, weights_dir: Path = WEIGHTS_DIR) -> Path | None:
    """``cache_dir/samverkan-reranker-<adapter hash>`` when it is built from the shipped adapter, else None."""
    from assistant.embeddings.e5_offline import sha256_file

    adapter_sha = sha256_file(Path(weights_dir) / ADAPTER_FILE)
    out = Path(cache_dir) / f"samverkan-reranker-{adapter_sha[:12]}"
    return out if is_valid(out, adapter_sha) else None


def build_reranker_dir(cache_dir: Path, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Return ``cache_dir/samverkan-reranker-<adapter hash>``, building it (base model first) if missing."""
    from safetensors.numpy import load_file, save_file

    from assistant.embeddings.e5_offline import build_model_dir, sha256_file

    out = built_reranker_dir(cache_dir, weights_dir)
    if out is not None:
        return out
    weights_dir = Path(weights_dir)
    adapter_sha = sha256_file(weights_dir / ADAPTER_FILE)
    out = Path(cache_dir) / f"samverkan-reranker-{adapter_sha[:12]}"
    base_folder = build_model_dir(cache_dir)
    config = RerankerConfig.load(weights_dir)
    state, head = merged_state(load_file(str(base_folder / "model.safetensors")),
                               load_file(str(weights_dir / ADAPTER_FILE)), config)

    # Built in a temporary sibling and renamed: an interrupted build never looks finished.
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp / "model.safetensors"))
    save_file({k: np.ascontiguousarray(v) for k, v in head.items()}, str(tmp / HEAD_FILE))
    shutil.copy(base_folder / "tokenizer.json", tmp / "tokenizer.json")
    tok_config = json.loads((base_folder / "tokenizer_config.json").read_text())
    tok_config["model_max_length"] = config.max_length
    (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    (tmp / "config.json").write_text(json.dumps(_hf_config(base_folder, config), indent=2))
    # the input format a runtime must reproduce (see pair_inputs / encode_pairs)
    (tmp / "reranker.json").write_text(json.dumps(
        {**config.to_json(), "query_prefix": QUERY_PREFIX, "passage_prefix": PASSAGE_PREFIX,
         "pooling": "mean of last_hidden_state over attention_mask",
         "head": f"{HEAD_FILE}: out_proj(tanh(dense(pooled)))",
         "output": "logit; sigmoid gives P(sentence answers question)"}, indent=2))
    (tmp / _STAMP).write_text(json.dumps(
        {"model.safetensors": sha256_file(tmp / "model.safetensors"),
         HEAD_FILE: sha256_file(tmp / HEAD_FILE), "adapter": adapter_sha,
         "base": json.loads((base_folder / "checksums.json").read_text())["model.safetensors"],
         "seen": {name: _seen(tmp / name) for name in ("model.safetensors", HEAD_FILE)}}, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


# --- torch model (training and the reference scorer) -----------------------------------------------


def torch_cross_encoder(encoder, dropout: float = 0.0):
    """``encoder`` (an XLMRobertaModel) + mean pooling + head, as a torch module returning logits [batch]."""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self, hidden: int):
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.dense = nn.Linear(hidden, hidden)
            self.out_proj = nn.Linear(hidden, 1)

        def forward(self, x):
            return self.out_proj(self.drop(torch.tanh(self.dense(self.drop(x)))))[:, 0]

    class CrossEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.head = Head(encoder.config.hidden_size)

        def pool(self, input_ids, attention_mask):
            """The mean of the encoder's last states over the pair's tokens: what the head reads."""
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(states.dtype)
            return (states * m).sum(1) / m.sum(1)

        def forward(self, input_ids, attention_mask):
            return self.head(self.pool(input_ids, attention_mask))

    return CrossEncoder()


class TorchScorer:
    """Scores pairs with the merged folder in float32 torch; the runtime may use ONNX instead."""

    def __init__(self, folder: Path, batch_size: int = 64):
        import torch
        from safetensors.torch import load_file
        from transformers import XLMRobertaModel

        self.folder = Path(folder)
        fmt = json.loads((self.folder / "reranker.json").read_text())
        self.max_length, self.max_question_tokens = fmt["max_length"], fmt["max_question_tokens"]
        encoder = XLMRobertaModel.from_pretrained(str(self.folder), dtype=torch.float32, add_pooling_layer=False)
        self.model = torch_cross_encoder(encoder)
        self.model.head.load_state_dict(load_file(str(self.folder / HEAD_FILE)))
        self.model.eval()
        self.tokenizer = load_tokenizer(self.folder)
        self.batch_size = batch_size

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Logits of pairs from :func:`pair_inputs`, in input order (batched by length for speed)."""
        return self._batched(pairs, self.model)

    def pooled(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The pooled encoder state the head reads, one row per pair in input order (for probes of what the
        model represents, benchmarks/answerability_probe.py)."""
        return self._batched(pairs, self.model.pool)

    def _batched(self, pairs: Sequence[tuple[str, str]], run) -> np.ndarray:
        import torch

        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                ids, mask = encode_pairs(self.tokenizer, [pairs[i] for i in idx], self.max_length,
                                         self.max_question_tokens)
                values = run(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
                if out is None:
                    out = np.zeros((len(pairs), *values.shape[1:]), np.float32)
                out[idx] = values
        return out if out is not None else np.zeros(len(pairs), np.float32)


def load_scorer(cache_dir: Path, weights_dir: Path = WEIGHTS_DIR) -> TorchScorer:
    return TorchScorer(build_reranker_dir(cache_dir, weights_dir))
