"""Lean inference for transformer models: ONNX Runtime + the Rust tokenizer, no torch at run time.

A local sentence-transformers or Hugging Face folder is exported to ONNX once, beside the model in
``<folder>/onnx/`` (or under the model cache when the folder is read-only):

* ``model.onnx``: fp32, attention, GELU and LayerNorm fused by ONNX Runtime's transformer optimizer;
* ``model-int8.onnx``: the same graph with dynamic int8 quantisation of the matrix products (per channel);
* ``tokenizer.json``: the model's tokenizer as transformers runs it, read by ``tokenizers`` (Rust);
* ``stamp.json``: the source files (size, mtime, SHA-256), the versions and what the runtime needs.

The export (``export``) is the only place that imports torch and transformers; it builds in a temporary
sibling folder and renames it into place, so an interrupted export never looks finished. At run time
(``load_encoder``, ``load_classifier``) only onnxruntime, tokenizers and numpy are imported.

Two kinds of model:

* ``"encoder"``: last hidden state → mean (or CLS) pooling over the attention mask → L2 normalisation,
  what sentence-transformers' Transformer + Pooling + Normalize stack computes;
* ``"classifier"``: a sequence-classification model over (text, text) pairs → its logits (one per pair
  for a one-label cross-encoder), before any activation.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ENGINE_VERSION = 2  # bump when the export changes: every cached export is then rebuilt
KINDS = ("encoder", "classifier")
VARIANTS = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
EXPORT_DIR = "onnx"
STAMP = "stamp.json"
TOKENIZER = "tokenizer.json"
_SENTENCE_MODULES = {"Transformer", "Pooling", "Normalize"}  # what the encoder kind reproduces
_OPSET = 17
log = logging.getLogger(__name__)
BATCH_TOKENS = 8192  # padded tokens per forward pass at most (see _batches)


class NotExportableError(RuntimeError):
    """This model cannot run on the lean engine (no local folder, no tokenizer.json, extra modules)."""


# --- what a model folder holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What the export and the runtime need to know about a model folder."""

    folder: Path
    kind: str
    model_type: str
    num_heads: int
    hidden_size: int
    max_seq_length: int
    pooling: str  # "mean" | "cls" (encoder); "" for a classifier
    do_lower_case: bool
    pad_token_id: int
    sources: tuple[str, ...]  # files (relative to folder) whose content defines the export

    def meta(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "max_seq_length": self.max_seq_length, "pooling": self.pooling,
                "do_lower_case": self.do_lower_case, "pad_token_id": self.pad_token_id}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def inspect_model(folder: Path, kind: str) -> ModelSpec:
    """Check that ``folder`` can run on the lean engine as ``kind``; raise NotExportableError if not."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise NotExportableError(f"{folder} is not a local model folder")
    if not (folder / "config.json").is_file():
        raise NotExportableError(f"{folder} has no config.json")
    if not (folder / TOKENIZER).is_file():
        raise NotExportableError(f"{folder} has no {TOKENIZER} (a fast tokenizer is needed)")
    config = _read_json(folder / "config.json")
    sources = ["config.json", TOKENIZER]
    pooling = ""
    module_dirs: list[str] = []
    if kind == "encoder":
        pooling = "mean"  # sentence-transformers' default for a plain Hugging Face folder
        if (folder / "modules.json").is_file():
            sources.append("modules.json")
            modules = _read_json(folder / "modules.json")
            for module in modules:
                if module["type"].rsplit(".", 1)[-1] not in _SENTENCE_MODULES:
                    raise NotExportableError(f"{folder}: module {module['type']} is not supported by the lean engine")
            for module in modules:
                short = module["type"].rsplit(".", 1)[-1]
                if short == "Transformer" and module.get("path"):
                    raise NotExportableError(f"{folder}: the transformer lives in a subfolder")
                if short == "Pooling":
                    module_dirs.append(module["path"])
                    pooling = _pooling_mode(folder / module["path"] / "config.json")
    elif not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        raise NotExportableError(f"{folder} is not a sequence-classification model")
    st_config = folder / "sentence_bert_config.json"
    st = _read_json(st_config) if st_config.is_file() else {}
    if st:
        sources.append("sentence_bert_config.json")
    tok_config = folder / "tokenizer_config.json"
    tok = _read_json(tok_config) if tok_config.is_file() else {}
    if tok:
        sources.append("tokenizer_config.json")
    weights = sorted(p.name for p in folder.iterdir()
                     if p.is_file() and (p.suffix == ".safetensors" or p.name.startswith("pytorch_model")))
    if not weights:
        raise NotExportableError(f"{folder} has no weights (model.safetensors)")
    sources += weights + [f"{d}/config.json" for d in module_dirs]
    return ModelSpec(
        folder=folder, kind=kind, model_type=str(config.get("model_type", "")),
        num_heads=int(config.get("num_attention_heads", 0)), hidden_size=int(config.get("hidden_size", 0)),
        max_seq_length=_max_seq_length(config, st, tok), pooling=pooling,
        do_lower_case=bool(st.get("do_lower_case", False)), pad_token_id=int(config.get("pad_token_id") or 0),
        sources=tuple(sources),
    )


def _pooling_mode(path: Path) -> str:
    cfg = _read_json(path)
    if "pooling_mode" in cfg:  # sentence-transformers >= 6: {"pooling_mode": "mean", "include_prompt": ...}
        mode = cfg["pooling_mode"]
        modes = [mode] if isinstance(mode, str) else list(mode)
        if not cfg.get("include_prompt", True):
            modes.append("without prompt")
    else:  # older folders: one boolean per mode
        modes = [k.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
                 for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if modes in (["mean"], ["cls"]):
        return modes[0]
    raise NotExportableError(f"{path}: pooling {modes} is not supported by the lean engine")


def _max_seq_length(config: dict, st: dict, tok: dict) -> int:
    """sentence-transformers' rule: its own config first, else the tokenizer's and the positions' limit."""
    if st.get("max_seq_length"):
        return int(st["max_seq_length"])
    limits = [int(tok["model_max_length"])] if int(tok.get("model_max_length") or 0) < 10**6 and tok else []
    positions = int(config.get("max_position_embeddings") or 0)
    if positions:  # RoBERTa-style models offset positions by the padding index
        limits.append(positions - 2 if config.get("model_type") in {"xlm-roberta", "roberta", "camembert"}
                      else positions)
    return min(limits) if limits else 512


# --- where the export lives, and whether it is current ---------------------------------------------


def export_dir(folder: Path, cache: Path | None = None) -> Path:
    """``<folder>/onnx``, or a folder under ``cache`` when the model folder is not writable."""
    folder = Path(folder)
    if os.access(folder, os.W_OK) or cache is None:
        return folder / EXPORT_DIR
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    return Path(cache) / EXPORT_DIR / f"{folder.name}-{digest}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_record(path: Path, with_checksum: bool = True) -> dict[str, Any]:
    st = path.stat()
    record: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if with_checksum:
        record["sha256"] = _sha256(path)
    return record


def _versions() -> dict[str, str]:
    out = {}
    for package in ("onnxruntime", "tokenizers", "torch", "transformers", "onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[package] = metadata.version(package)
    return out


def _same_file(path: Path, record: dict[str, Any]) -> bool:
    """Size and mtime equal: the recorded checksum holds (no hashing of 100s of MB at every start).
    Otherwise the content decides, so a copied or touched but identical file is still accepted."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != record.get("size"):
        return False
    if st.st_mtime_ns == record.get("mtime_ns"):
        return True
    return _sha256(path) == record.get("sha256")


def read_stamp(out: Path) -> dict[str, Any] | None:
    try:
        return _read_json(out / STAMP)
    except (OSError, ValueError):
        return None


def is_current(folder: Path, kind: str, out: Path | None = None) -> bool:
    """True when ``out`` (default ``<folder>/onnx``) holds a finished export of ``folder``'s present files."""
    folder = Path(folder)
    out = out or folder / EXPORT_DIR
    stamp = read_stamp(out)
    if not stamp or stamp.get("engine_version") != ENGINE_VERSION or stamp.get("kind") != kind:
        return False
    if stamp.get("versions", {}).get("onnxruntime") != metadata.version("onnxruntime"):
        return False  # the fused operators belong to the runtime that wrote them
    sources, files = stamp.get("sources") or {}, stamp.get("files") or {}
    if not sources or not files:
        return False
    if not all(_same_file(folder / name, rec) for name, rec in sources.items()):
        return False
    return all((out / name).is_file() and (out / name).stat().st_size == rec["size"] for name, rec in files.items())


# --- the export (torch only here) ------------------------------------------------------------------


@contextlib.contextmanager
def _export_lock(out: Path) -> Iterator[None]:
    """One export at a time per target (another process waits, then finds it done)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_exported(folder: Path, kind: str, cache: Path | None = None, out: Path | None = None) -> Path:
    """The export folder of ``folder`` (``out``, default ``export_dir``), exporting first when it is missing
    or stale."""
    out = out or export_dir(folder, cache)
    if is_current(folder, kind, out):
        return out
    return export(folder, kind, out)


def export(folder: Path, kind: str, out: Path | None = None) -> Path:
    """Export ``folder`` to ONNX (fp32 and int8) into ``out`` atomically; return ``out``."""
    spec = inspect_model(folder, kind)
    out = Path(out) if out else export_dir(folder)
    with _export_lock(out):
        if is_current(folder, kind, out):
            return out  # another process finished it while we waited
        sources = {name: _file_record(spec.folder / name) for name in spec.sources}
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            started = time.perf_counter()
            _save_tokenizer(spec, tmp / TOKENIZER)
            if kind == "encoder":
                from assistant.embeddings import spm_tokenizer

                spm_tokenizer.ensure(tmp, _CALIBRATION)
            inputs = _torch_export(spec, tmp / "raw.onnx")
            _optimize(spec, tmp / "raw.onnx", tmp / VARIANTS["onnx"])
            _remove(tmp / "raw.onnx")
            int8 = _quantize(spec, tmp / VARIANTS["onnx"], tmp / VARIANTS["onnx-int8"])
            stamp = {
                "engine_version": ENGINE_VERSION, "kind": kind, "source_folder": str(spec.folder),
                "created": time.time(), "export_seconds": round(time.perf_counter() - started, 1),
                "versions": _versions(), "sources": sources,
                "files": {name: _file_record(tmp / name) for name in _exported_files()},
                "meta": {**spec.meta(), "inputs": inputs}, "int8": int8,
            }
            (tmp / STAMP).write_text(json.dumps(stamp, indent=1))
            old = out.with_name(f"{out.name}.old-{os.getpid()}")
            if out.exists():
                out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _exported_files() -> list[str]:
    return [*VARIANTS.values(), *(name + ".data" for name in VARIANTS.values()), TOKENIZER]


def _save_tokenizer(spec: ModelSpec, target: Path) -> None:
    """The tokenizer exactly as transformers runs it. Its class may rebuild the pipeline rather than take
    tokenizer.json as is: for XLM-R, transformers 5 splits on whitespace first, so a trailing or lone space
    gives no token, where the file's own pipeline would give "▁". Token counts and vectors must not move."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(spec.folder))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        shutil.copyfile(spec.folder / TOKENIZER, target)
        return
    backend.no_padding()
    backend.no_truncation()
    target.write_text(backend.to_str(), encoding="utf-8")


def _torch_export(spec: ModelSpec, target: Path) -> list[str]:
    """torch → ONNX with dynamic batch and sequence axes; returns the graph's input names."""
    import inspect
    import warnings

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    loader = AutoModel if spec.kind == "encoder" else AutoModelForSequenceClassification
    # eager attention: the graph ONNX Runtime's optimizer recognises and fuses into one Attention op
    model = loader.from_pretrained(str(spec.folder), dtype=torch.float32, attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")
    output = "last_hidden_state" if spec.kind == "encoder" else "logits"

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return getattr(self.model(**dict(zip(names, tensors, strict=True))), output)

    tokenizer = Tokenizer.from_file(str(target.parent / TOKENIZER))
    sample = ["Ett kort exempel.", "Ett längre exempel med fler ord i, för att få utfyllnad i satsen."]
    if spec.kind == "classifier":
        encodings = tokenizer.encode_batch([(sample[0], sample[1]), (sample[1], sample[0][:5])])
    else:
        encodings = tokenizer.encode_batch(sample)
    batch = _pad(encodings, spec.pad_token_id)
    args = tuple(torch.from_numpy(batch[name]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch", 1: "sequence"} if spec.kind == "encoder" else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python conditions on (static) shapes
        torch.onnx.export(Graph(), args, str(target), dynamo=False, input_names=names, output_names=[output],
                          dynamic_axes=axes, opset_version=_OPSET, do_constant_folding=True)
    return names


def _optimize(spec: ModelSpec, source: Path, target: Path) -> None:
    """Fuse attention, GELU and LayerNorm (BERT-family graphs); any other graph is kept as exported."""
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimized = optimize_model(str(source), model_type="bert", num_heads=spec.num_heads,
                                   hidden_size=spec.hidden_size, opt_level=0, use_gpu=False)
        optimized.topological_sort()
        model = optimized.model
    except Exception:  # fusion is an optimisation: the plain graph is still correct
        model = onnx.load(str(source))
    save_aligned(model, target)


def save_aligned(model: Any, target: Path) -> None:
    """Save with the weights in ``<target>.data``, each at a 64 KiB boundary: ONNX Runtime then maps the
    file instead of copying it (measured on e5-small fp32: load 2.6 → 0.3 s, peak RSS 870 → 165 MB), and
    the 250 k-row embedding table costs memory only for the rows that are looked up."""
    import onnx

    domains = {opset.domain for opset in model.opset_import}
    if "com.microsoft" not in domains and any(node.domain == "com.microsoft" for node in model.graph.node):
        model.opset_import.add(domain="com.microsoft", version=1)  # the fused operators' domain
    data_name = target.name + ".data"
    offset = 0
    with open(target.parent / data_name, "wb") as data:
        for tensor in model.graph.initializer:
            if not tensor.HasField("raw_data") or len(tensor.raw_data) < 1024:
                continue
            padding = -offset % 65536
            data.write(b"\0" * padding)
            offset += padding
            raw = tensor.raw_data
            data.write(raw)
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            del tensor.external_data[:]
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(raw)
    onnx.save(model, str(target))


def _remove(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()


# Calibration inputs for the int8 variant: everyday Swedish and English of varied length (any model).
_CALIBRATION = (
    "Vad är direktupphandlingsgränsen?",
    "Får kommunen reservera en upphandling för sociala företag?",
    "Hur länge gäller avtalet?",
    "Ett idéburet offentligt partnerskap är en samverkansform mellan kommunen och en ideell förening, där "
    "båda parter bidrar med resurser till ett gemensamt mål.",
    "Arbetsintegrerande sociala företag anställer personer som står långt från arbetsmarknaden och "
    "återinvesterar vinsten i den egna verksamheten.",
    "Enligt 4 kap. 18 § LOU får en upphandlande myndighet reservera rätten att delta i ett "
    "upphandlingsförfarande för leverantörer vars huvudsakliga syfte är social och yrkesmässig integration "
    "av personer med funktionsnedsättning eller missgynnade personer. Minst 30 procent av de anställda ska "
    "vara sådana arbetstagare.",
    "Kommunstyrelsen beslutade den 12 mars 2021 att avsätta 1,5 miljoner kronor till projektet.",
    "Regionala nätverk för sociala företag samordnas av en samordnare i varje län.",
    "How do municipalities buy services from social enterprises?",
    "The threshold for direct awards is 700,000 SEK since 1 February 2022.",
    "Hej!",
    "Efter tilldelningsbeslutet ska kommunen meddela alla anbudsgivare vilket anbud som antogs och skälen "
    "för beslutet, och avtal får inte ingås förrän avtalsspärren har löpt ut.",
)
_INT8_TARGET = {"encoder": 0.998, "classifier": 0.995}  # calibration agreement to reach (see _agreement)
_INT8_MAX_FLOAT = 6  # matrix products left in float at most (of 36 in a 12-layer encoder)


def _calibration_inputs(kind: str) -> list[Any]:
    if kind == "encoder":
        return list(_CALIBRATION)
    return [(a, b) for a, b in zip(_CALIBRATION, _CALIBRATION[3:] + _CALIBRATION[:3], strict=True)]


def _quantize(spec: ModelSpec, source: Path, target: Path) -> dict[str, Any]:
    """Dynamic int8: weights per output channel, activations per tensor at run time; embedding tables stay
    float (an int8 table costs quality and saves no time).

    Per-tensor activation scales suffer from outliers: in e5-small the input of layer 4's feed-forward
    output projection reaches 55 where its spread is 0.5, and quantising it pulls single vectors down to a
    cosine of 0.992 with the reference. So the matrix products whose inputs have the widest range relative
    to their spread are left in float, one at a time, until the output agrees with fp32 on the calibration
    inputs (lowest cosine for an encoder, logit correlation for a classifier)."""
    reference, ranked = _float_reference(spec, source)
    inputs = _calibration_inputs(spec.kind)
    quantized = target.with_name("quantized.onnx")
    excluded: list[str] = []
    tried: list[tuple[float, list[str]]] = []
    while True:
        _quantize_dynamic(source, quantized, excluded)
        tried.append((_agreement(spec.kind, reference, _run_model(spec, quantized, inputs)[0]), list(excluded)))
        if tried[-1][0] >= _INT8_TARGET[spec.kind] or len(excluded) >= min(_INT8_MAX_FLOAT, len(ranked)):
            break
        excluded.append(ranked[len(excluded)])
    agreement, best = max(tried, key=lambda t: t[0])
    if best != excluded:  # the last try was not the best one
        _quantize_dynamic(source, quantized, best)
    import onnx

    save_aligned(onnx.load(str(quantized)), target)
    _remove(quantized)
    return {"float_nodes": best, "calibration_agreement": round(agreement, 5),
            "tries": [round(a, 5) for a, _ in tried]}


class _NoPreprocessHint(logging.Filter):
    """onnxruntime's quantizer logs "Please consider to run pre-processing before quantization" on the root
    logger at every call; the export already ran the optimizer, so the hint is noise on every first start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _quantize_dynamic(source: Path, target: Path, excluded: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _NoPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=list(excluded),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.getLogger().removeFilter(hint)


def _float_reference(spec: ModelSpec, source: Path) -> tuple[np.ndarray, list[str]]:
    """fp32 outputs on the calibration inputs, and the MatMul nodes ranked by (max - min) / std of their
    input activations, widest first."""
    import onnx

    model = onnx.load(str(source))
    matmuls = [(n.name, n.input[0]) for n in model.graph.node if n.op_type == "MatMul"]
    for _, tensor in matmuls:
        model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    probe = source.with_name("probe.onnx")
    save_aligned(model, probe)
    outputs = _run_model(spec, probe, _calibration_inputs(spec.kind), extra=[t for _, t in matmuls])
    _remove(probe)
    spread = {}
    for (name, _), values in zip(matmuls, outputs[1:], strict=True):
        flat = np.concatenate([v.ravel() for v in values])
        spread[name] = float((flat.max() - flat.min()) / max(float(flat.std()), 1e-6))
    return outputs[0], sorted(spread, key=lambda n: -spread[n])


def _run_model(spec: ModelSpec, path: Path, inputs: list[Any], extra: Sequence[str] = ()) -> list[Any]:
    """Run one input at a time (no padding: the activations are those of real tokens). Returns the pooled
    vectors (encoder) or logits (classifier) stacked, then per ``extra`` output its values per input."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path.parent / TOKENIZER))
    tokenizer.enable_truncation(max_length=spec.max_seq_length)
    options = session_options()
    if extra:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep probed tensors
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    main: list[np.ndarray] = []
    extras: list[list[np.ndarray]] = [[] for _ in extra]
    for item in inputs:
        encoding = tokenizer.encode(*item) if isinstance(item, tuple) else tokenizer.encode(item)
        batch = _pad([encoding], spec.pad_token_id)
        out = session.run([session.get_outputs()[0].name, *extra], {n: batch[n] for n in names})
        if spec.kind == "classifier":
            main.append(out[0][0])
        else:
            main.append(out[0][0, 0] if spec.pooling == "cls" else out[0][0].mean(axis=0))
        for values, value in zip(extras, out[1:], strict=True):
            values.append(value)
    return [np.stack(main), *extras]


def _agreement(kind: str, reference: np.ndarray, candidate: np.ndarray) -> float:
    """Encoder: the lowest cosine between a vector and its fp32 reference. Classifier: the correlation of
    the logits with the fp32 ones over the calibration pairs (what ranking by them needs)."""
    if kind == "encoder":
        a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        b = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
        return float((a * b).sum(axis=1).min())
    x, y = reference.ravel(), candidate.ravel()
    if x.std() == 0 or y.std() == 0:
        return float(np.allclose(x, y, atol=1e-3))
    return float(np.corrcoef(x, y)[0, 1])


# --- the runtime (no torch) ------------------------------------------------------------------------


def _batches(order: list[int], lengths: list[int], batch_size: int, batch_tokens: int) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (shortest first) of at most ``batch_size`` inputs and, padded, at most
    ``batch_tokens`` tokens: long passages go in smaller batches, so the attention buffers stay small."""
    part: list[int] = []
    for i in order:
        if part and (len(part) >= batch_size or (len(part) + 1) * lengths[i] > batch_tokens):
            yield part
            part = []
        part.append(i)
    if part:
        yield part


def _pad(encodings: Sequence[Any], pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad one batch to its longest member."""
    length = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), length), dtype=np.int64)
    types = np.zeros((len(encodings), length), dtype=np.int64)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n] = e.ids
        mask[row, :n] = 1
        types[row, :n] = e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def session_options(threads: int | None = None) -> Any:
    """Tuned for a small machine: every core on one request, no inter-op pool, no busy-waiting."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads would busy-wait after each run and steal the cores BM25 and numpy need next (the
    # same effect retrieval.py limits OpenBLAS for); measured p50 205 → 183 ms on a loaded machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


# --- one embedding table per process --------------------------------------------------------------
#
# Why by hand: ONNX Runtime maps the weights file (save_aligned) and reads rows of the 250 k × 384 word
# embedding table as tokens come. The kernel's read-ahead then pulls in ~128 KB around every row, so after
# a few dozen questions the relevance model's whole table (384 MB) was resident (measured: 284 MB of a
# 759 MB server). And the embedder and the relevance model hold the same frozen e5 table twice. So the
# table is mapped here once per distinct content, advised for random access, and handed to every session
# with the same table as an initializer that ONNX Runtime uses in place (outputs bit-identical, measured).

TABLES = "tables.json"  # per export: where each variant's word-embedding table lies, and its checksum
_TABLE_SUFFIX = "word_embeddings.weight"
_TABLES: dict[str, tuple[Any, Any]] = {}  # sha256 of the table bytes → (memmap, OrtValue); never freed
_TABLES_LOCK = threading.Lock()


def _table_record(out: Path, variant: str) -> dict[str, Any] | None:
    """Name, offset, shape and checksum of the external word-embedding table of one exported variant,
    computed once per export (reads the graph without weights and hashes the table) and kept in TABLES."""
    model, data = out / VARIANTS[variant], out / (VARIANTS[variant] + ".data")
    key = {"data_size": data.stat().st_size, "data_mtime_ns": data.stat().st_mtime_ns}
    try:
        records = _read_json(out / TABLES)
    except (OSError, ValueError):
        records = {}
    if records.get(variant, {}).get("key") == key:
        return records[variant]["table"]
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    table = None
    for tensor in graph.initializer:
        location = {e.key: e.value for e in tensor.external_data}
        if (tensor.name.endswith(_TABLE_SUFFIX) and tensor.data_type == onnx.TensorProto.FLOAT
                and location.get("location") == data.name and len(tensor.dims) == 2):
            offset, length = int(location.get("offset", 0)), int(location["length"])
            h = hashlib.sha256()
            with open(data, "rb") as f:
                f.seek(offset)
                remaining = length
                while remaining:
                    block = f.read(min(1 << 20, remaining))
                    if not block:
                        raise ValueError(f"{data} is shorter than its graph says")
                    h.update(block)
                    remaining -= len(block)
            table = {"name": tensor.name, "offset": offset, "dims": [int(d) for d in tensor.dims],
                     "sha256": h.hexdigest()}
            break
    records[variant] = {"key": key, "table": table}
    tmp = out / f"{TABLES}.tmp-{os.getpid()}-{threading.get_ident()}"
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(out / TABLES)
    return table


def _shared_table(out: Path, variant: str) -> tuple[str, Any] | None:
    """(initializer name, OrtValue) of this export's word-embedding table, shared by every session of the
    process whose table has the same bytes; None when the export has no such table or it cannot be read."""
    import mmap

    import onnxruntime as ort

    try:
        table = _table_record(out, variant)
    except (OSError, ValueError, KeyError) as exc:
        log.debug("no shared embedding table for %s: %s", out, exc)
        return None
    if table is None:
        return None
    with _TABLES_LOCK:
        if table["sha256"] not in _TABLES:
            rows = np.memmap(out / (VARIANTS[variant] + ".data"), dtype=np.float32, mode="r",
                             offset=table["offset"], shape=tuple(table["dims"]))
            with contextlib.suppress(AttributeError, OSError):  # madvise: Linux and macOS
                rows._mmap.madvise(mmap.MADV_RANDOM)  # one page per row looked up, no read-ahead
            _TABLES[table["sha256"]] = (rows, ort.OrtValue.ortvalue_from_numpy(rows))
        return table["name"], _TABLES[table["sha256"]][1]


def open_session(out: Path, variant: str = "onnx", threads: int | None = None) -> Any:
    """An ONNX Runtime session of an export, its word-embedding table shared with the process's other
    sessions (see above)."""
    import onnxruntime as ort

    options = session_options(threads)
    shared = _shared_table(Path(out), variant)
    if shared is not None:
        options.add_initializer(*shared)
    return ort.InferenceSession(str(Path(out) / VARIANTS[variant]), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An exported model: ONNX Runtime session + tokenizer, batches by length, thread-safe."""

    kind = ""

    def __init__(self, out: Path, variant: str = "onnx", threads: int | None = None):

        if variant not in VARIANTS:
            raise ValueError(f"unknown engine variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        stamp = read_stamp(out)
        if not stamp or stamp.get("kind") != self.kind:
            raise NotExportableError(f"{out} holds no {self.kind} export")
        self.folder = Path(out)
        self.engine = variant
        meta = stamp["meta"]
        self.max_seq_length = int(meta["max_seq_length"])
        self.do_lower_case = bool(meta["do_lower_case"])
        self.pad_token_id = int(meta["pad_token_id"])
        self.pooling = meta.get("pooling", "")
        # Reading the 250 k-piece vocabulary takes ~0.6 s: done in the background while the session opens
        # (and the caller loads its index), joined on first use.
        self._tokenizer: Any = None
        self._tokenizer_error: BaseException | None = None
        # Not a daemon (nor is any thread here that runs C++): at exit Python stops a daemon thread with
        # pthread_exit, whose unwinding through SentencePiece's C++ frames calls std::terminate, so a command
        # that ended before the load did (`assistant index` with nothing to do) died with SIGABRT, exit 134.
        self._tokenizer_thread = threading.Thread(target=self._load_tokenizer, name="tokenizer-load")
        self._tokenizer_thread.start()
        self.session = open_session(self.folder, variant, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.batch_tokens = BATCH_TOKENS
        self._lock = threading.Lock()  # two runs at once on 2 cores only thrash (measured in benchmarks)

    def _load_tokenizer(self) -> None:
        try:
            self._tokenizer = load_tokenizer(self.folder, self.max_seq_length, pairs=self.kind == "classifier")
        except BaseException as exc:  # handed to the caller by the tokenizer property
            self._tokenizer_error = exc

    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (truncating to max_seq_length, never padding)."""
        if self._tokenizer is None:
            self._tokenizer_thread.join()
            if self._tokenizer_error is not None:
                raise self._tokenizer_error
        return self._tokenizer

    def _prepare(self, text: str) -> str:
        return text.lower() if self.do_lower_case else text

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees, special tokens included, before truncation."""
        tokenizer = self.tokenizer
        with self._lock:
            tokenizer.no_truncation()
            try:
                return len(tokenizer.encode(self._prepare(text)).ids)
            finally:
                tokenizer.enable_truncation(max_length=self.max_seq_length)

    def _run(self, inputs: list[Any], batch_size: int, show_progress: bool = False) -> list[np.ndarray]:
        """Tokenise all inputs, run them shortest first in batches padded per batch, return per-input rows
        (in input order) of whatever ``_postprocess`` makes of the model output."""
        tokenizer = self.tokenizer
        with self._lock:
            encodings = tokenizer.encode_batch(inputs)
            order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
            rows: list[np.ndarray | None] = [None] * len(encodings)
            bar = _progress(len(order), show_progress)
            for part in _batches(order, [len(e.ids) for e in encodings], batch_size, self.batch_tokens):
                batch = _pad([encodings[i] for i in part], self.pad_token_id)
                feed = {name: batch[name] for name in self.input_names}
                output = self.session.run(None, feed)[0]
                for i, row in zip(part, self._postprocess(output, batch["attention_mask"]), strict=True):
                    rows[i] = row
                if bar is not None:
                    bar.update(len(part))
            if bar is not None:
                bar.close()
        return rows  # type: ignore[return-value]

    def _postprocess(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxEncoder(OnnxModel):
    """Sentence embeddings; ``encode`` takes the arguments of SentenceTransformer.encode the project uses."""

    kind = "encoder"

    def get_embedding_dimension(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def encode(self, sentences: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        del convert_to_numpy  # always numpy
        texts = [self._prepare(t) for t in sentences]
        if not texts:
            return np.zeros((0, self.get_embedding_dimension()), dtype=np.float32)
        vectors = np.stack(self._run(texts, batch_size, show_progress_bar)).astype(np.float32)
        if normalize_embeddings:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _postprocess(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            return output[:, 0]
        weights = mask.astype(np.float32)
        summed = np.einsum("bsd,bs->bd", output, weights)
        return summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)


class OnnxClassifier(OnnxModel):
    """Cross-encoder scores: ``predict`` gives the logits per (first, second) pair, before any sigmoid."""

    kind = "classifier"

    @property
    def num_labels(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """Shape (n,) for a one-label model, else (n, num_labels)."""
        inputs = [(self._prepare(a), self._prepare(b)) for a, b in pairs]
        if not inputs:
            return np.zeros((0,) if self.num_labels == 1 else (0, self.num_labels), dtype=np.float32)
        logits = np.stack(self._run(inputs, batch_size)).astype(np.float32)
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def _postprocess(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return output


def _progress(total: int, show: bool):
    if not show or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="Batches", unit="st")


def load_tokenizer(out: Path, max_length: int | None, pairs: bool = False) -> Any:
    """The tokenizer of an export: the process-wide SentencePiece copy when it gives the same ids (see
    spm_tokenizer: a fifth of the memory, shared by every model with this tokenizer), else ``tokenizers``.
    Truncates at ``max_length`` tokens (None: never); never pads. ``pairs``: (text, text) inputs too."""
    if not pairs:
        from assistant.embeddings import spm_tokenizer

        if spm_tokenizer.ensure(Path(out), _CALIBRATION) is not None:
            return spm_tokenizer.shared(Path(out), max_length)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(out) / TOKENIZER))
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def load_encoder(folder: Path, variant: str = "onnx", cache: Path | None = None,
                 threads: int | None = None) -> OnnxEncoder:
    """The lean encoder of a sentence-transformers folder (exported on first use)."""
    return OnnxEncoder(ensure_exported(folder, "encoder", cache), variant, threads)


def load_classifier(folder: Path, variant: str = "onnx", cache: Path | None = None,
                    threads: int | None = None) -> OnnxClassifier:
    """The lean cross-encoder of a sequence-classification folder (exported on first use)."""
    return OnnxClassifier(ensure_exported(folder, "classifier", cache), variant, threads)
