"""assistant.embeddings.onnx_engine: the lean engine against the reference (sentence-transformers and
transformers on torch), the export's bookkeeping, and the fallback for models it cannot run.

The real default model is compared on a fixed sample of the shipped corpus; the export mechanics and the
classifier kind use tiny randomly initialised XLM-R models with the e5 tokenizer, exported in tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant import loaders
from assistant.chunking import chunk_document
from assistant.embeddings import Embedder, load_embedder, onnx_engine
from assistant.embeddings.onnx_engine import NotExportableError, OnnxClassifier, OnnxEncoder
from assistant.indexer import build_index
from assistant.retrieval import IndexMismatchError, LoadedIndex
from assistant.settings import DEFAULT_MODEL, PROJECT_ROOT, Settings
from assistant.text import split_sentences

LONG = " ".join(["Kommunen får reservera kontrakt för leverantörer som arbetar med social integration."] * 80)


# --- the default model against sentence-transformers --------------------------------------------


@pytest.fixture(scope="module")
def reference(model_dir):
    """The reference path: sentence-transformers on torch, as the project ran before the lean engine."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def corpus_sample(embedder) -> dict[str, list[str]]:
    """A fixed sample of real Swedish texts, with the model's prefixes: every third chunk of the shipped
    corpus, a sentence from each sampled chunk, and the first 40 questions of the eval set."""
    chunks = []
    for file in loaders.discover(PROJECT_ROOT / "corpus"):
        chunks += chunk_document(loaders.load(file), embedder.count_tokens, 200, embedder.max_tokens)
    sampled = chunks[::3]
    questions = [json.loads(line)["question"]
                 for line in (PROJECT_ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()][:40]
    return {
        "passages": [embedder.passage_prefix + c.embedding_text() for c in sampled]
        + [embedder.passage_prefix + split_sentences(c.text)[0] for c in sampled],
        "queries": [embedder.query_prefix + q for q in questions],
    }


@pytest.fixture(scope="module")
def reference_vectors(reference, corpus_sample) -> dict[str, np.ndarray]:
    return {kind: reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=16)
            for kind, texts in corpus_sample.items()}


def test_default_engine_is_onnx_and_imports_no_torch_model(embedder):
    assert Settings().engine == "onnx"
    assert isinstance(embedder.model, OnnxEncoder)
    assert embedder.engine == "onnx"
    assert embedder.fingerprint.endswith("|onnx")


@pytest.mark.parametrize(("variant", "floor"), [("onnx", 0.9999), ("onnx-int8", 0.995)])
def test_lean_vectors_match_sentence_transformers(embedder, corpus_sample, reference_vectors, variant, floor):
    """Issue 11's bar: every query and passage vector within cosine 0.995 of the reference; fp32 is exact
    up to float rounding."""
    lean = OnnxEncoder(embedder.model.folder, variant)
    assert len(corpus_sample["passages"]) > 100 and len(corpus_sample["queries"]) == 40
    for kind, texts in corpus_sample.items():
        vectors = lean.encode(texts, batch_size=16, normalize_embeddings=True)
        assert vectors.shape == reference_vectors[kind].shape and vectors.dtype == np.float32
        cosines = (vectors * reference_vectors[kind]).sum(axis=1)
        assert cosines.min() >= floor, (kind, float(cosines.min()), texts[int(cosines.argmin())][:80])


def test_token_counts_equal_the_hugging_face_tokenizer(embedder, corpus_sample, reference_tokenizer):
    texts = [*corpus_sample["passages"][:30], *corpus_sample["queries"][:10], LONG, "", "  ", "Ö ä å — “citat” 1,5 %"]
    for text in texts:
        expected = len(reference_tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])
        assert embedder.model.count_tokens(text) == expected, text[:60]
    assert embedder.model.count_tokens(LONG) > 512  # counted in full, not truncated


def test_batches_by_length_keep_the_input_order(embedder):
    texts = ["Kort.", LONG, "En mening av medellängd om reserverade kontrakt.", "Hej", LONG[:900]]
    together = embedder.model.encode(texts, batch_size=2, normalize_embeddings=True)
    one_by_one = np.stack([embedder.model.encode([t], normalize_embeddings=True)[0] for t in texts])
    assert np.allclose(together, one_by_one, atol=2e-5)


def test_long_texts_are_truncated_like_sentence_transformers(embedder, reference):
    lean = embedder.model.encode(["passage: " + LONG], normalize_embeddings=True)[0]
    ref = reference.encode(["passage: " + LONG], normalize_embeddings=True, convert_to_numpy=True)[0]
    assert float(lean @ ref) > 0.9999


# --- engines and indexes --------------------------------------------------------------------------


def test_an_index_built_by_one_engine_is_refused_and_rebuilt_by_another(served, embedder, reference, tmp_path):
    torch_embedder = Embedder(reference, DEFAULT_MODEL, embedder.query_prefix, embedder.passage_prefix)
    assert torch_embedder.engine == "torch"
    assert torch_embedder.fingerprint != embedder.fingerprint
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(served.settings, torch_embedder)
    settings = served.settings.with_(index_dir=tmp_path / "index")
    build_index(settings, embedder)
    report = build_index(settings, torch_embedder)
    assert report.rebuilt and report.chunks_embedded == report.chunks
    assert LoadedIndex.open(settings, torch_embedder).chunks


def test_unknown_engine_is_an_error():
    with pytest.raises(ValueError, match=r"ASSISTANT_ENGINE='tpu' .*välj onnx, onnx-int8 eller torch"):
        load_embedder(Settings(engine="tpu"))


# --- export bookkeeping, on a tiny model ------------------------------------------------------------


def _tiny_config(**extra):
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                            eos_token_id=2, **extra)


def _copy_tokenizer(model_dir: Path, out: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(model_dir / name, out / name)


def _save_tiny_encoder(out: Path, model_dir: Path, seed: int = 0, max_seq_length: int = 128) -> Path:
    """A sentence-transformers folder (Transformer → mean Pooling → Normalize) around a random 2-layer XLM-R."""
    import torch
    from transformers import XLMRobertaModel

    torch.manual_seed(seed)
    XLMRobertaModel(_tiny_config()).save_pretrained(out)
    _copy_tokenizer(model_dir, out)
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                              "do_lower_case": False}))
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    return out


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, model_dir) -> Path:
    folder = _save_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"), model_dir)
    onnx_engine.ensure_exported(folder, "encoder")
    return folder


TEXTS = ["Vad är direktupphandlingsgränsen?", "Kort.", LONG, "Idéburet offentligt partnerskap.", ""]


@pytest.mark.parametrize(("variant", "floor"), [("onnx", 0.99999), ("onnx-int8", 0.98)])
def test_tiny_encoder_matches_sentence_transformers(tiny_encoder, variant, floor):
    from sentence_transformers import SentenceTransformer

    lean = onnx_engine.load_encoder(tiny_encoder, variant)
    assert lean.max_seq_length == 128 and lean.get_embedding_dimension() == 32
    ref = SentenceTransformer(str(tiny_encoder), device="cpu").encode(TEXTS, normalize_embeddings=True)
    cosines = (lean.encode(TEXTS, batch_size=2, normalize_embeddings=True) * ref).sum(axis=1)
    assert cosines.min() >= floor, cosines


def test_export_is_stamped_and_reused(tiny_encoder):
    out = onnx_engine.export_dir(tiny_encoder)
    assert out == tiny_encoder / "onnx"
    stamp = json.loads((out / "stamp.json").read_text())
    assert stamp["kind"] == "encoder" and stamp["engine_version"] == onnx_engine.ENGINE_VERSION
    assert stamp["sources"]["model.safetensors"]["sha256"] == onnx_engine._sha256(tiny_encoder / "model.safetensors")
    assert {"torch", "onnxruntime", "tokenizers", "onnx"} <= set(stamp["versions"])
    assert stamp["meta"]["max_seq_length"] == 128 and stamp["meta"]["pooling"] == "mean"
    assert stamp["int8"]["calibration_agreement"] > 0.9
    for name, record in stamp["files"].items():
        assert (out / name).stat().st_size == record["size"]
    assert not list(tiny_encoder.glob("onnx.*"))  # no temporary or old folder left behind
    before = (out / "stamp.json").stat().st_mtime_ns
    assert onnx_engine.ensure_exported(tiny_encoder, "encoder") == out
    assert (out / "stamp.json").stat().st_mtime_ns == before  # current: not exported again


def test_changed_weights_make_the_export_stale_and_identical_ones_do_not(tmp_path, model_dir):
    folder = _save_tiny_encoder(tmp_path / "model", model_dir, seed=1)
    out = onnx_engine.ensure_exported(folder, "encoder")
    first = OnnxEncoder(out).encode(["Hej"], normalize_embeddings=True)[0]
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same content, new mtime: still current (checksum decides)
    assert onnx_engine.is_current(folder, "encoder")
    _save_tiny_encoder(folder, model_dir, seed=2)  # other weights
    assert not onnx_engine.is_current(folder, "encoder")
    onnx_engine.ensure_exported(folder, "encoder")
    assert onnx_engine.is_current(folder, "encoder")
    second = OnnxEncoder(out).encode(["Hej"], normalize_embeddings=True)[0]
    assert float(first @ second) < 0.99  # the new export runs the new weights


def test_interrupted_or_foreign_exports_are_not_current(tmp_path, tiny_encoder):
    folder = tmp_path / "model"
    shutil.copytree(tiny_encoder, folder)
    assert onnx_engine.is_current(folder, "encoder")  # copied with its mtimes: still current
    assert not onnx_engine.is_current(folder, "classifier")  # an export of another kind
    (folder / "onnx" / "model.onnx.data").write_bytes(b"cut short")
    assert not onnx_engine.is_current(folder, "encoder")
    (folder / "onnx" / "stamp.json").unlink()
    assert not onnx_engine.is_current(folder, "encoder")
    onnx_engine.ensure_exported(folder, "encoder")
    assert onnx_engine.is_current(folder, "encoder")


def test_models_the_engine_cannot_run_are_refused_and_run_on_torch(tmp_path, tiny_encoder):
    from sentence_transformers import SentenceTransformer, models

    with pytest.raises(NotExportableError):
        onnx_engine.inspect_model(tmp_path / "no-such-model", "encoder")
    with pytest.raises(NotExportableError, match="sequence-classification"):
        onnx_engine.inspect_model(tiny_encoder, "classifier")
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_encoder, no_tokenizer, ignore=shutil.ignore_patterns("onnx", "tokenizer.json"))
    with pytest.raises(NotExportableError, match=r"tokenizer\.json"):
        onnx_engine.inspect_model(no_tokenizer, "encoder")
    # a Dense layer after pooling: not what the encoder kind computes
    st = SentenceTransformer(str(tiny_encoder), device="cpu")
    dense = tmp_path / "with-dense"
    SentenceTransformer(modules=[*st, models.Dense(32, 16)], device="cpu").save(str(dense))
    with pytest.raises(NotExportableError, match="Dense"):
        onnx_engine.inspect_model(dense, "encoder")
    fallback = load_embedder(Settings(model=str(dense), home=tmp_path / "home"))
    assert fallback.engine == "torch" and fallback.fingerprint.endswith("|torch")
    assert fallback.embed_queries(["Hej"]).shape == (1, 16)
    lean = load_embedder(Settings(model=str(tiny_encoder), home=tmp_path / "home"))
    assert lean.engine == "onnx" and lean.dimension == 32


# --- the classifier kind ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, model_dir) -> Path:
    """A randomly initialised one-label XLM-R sequence classifier (a cross-encoder's shape) with the e5
    tokenizer, saved with save_pretrained."""
    import torch
    from transformers import XLMRobertaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(_tiny_config(num_labels=1)).save_pretrained(out)
    _copy_tokenizer(model_dir, out)
    return out


PAIRS = [
    ("Vad är direktupphandlingsgränsen?", "Direktupphandlingsgränsen är 700 000 kronor."),
    ("Får kommunen reservera kontrakt?", LONG),
    ("Hej", "Kort."),
    ("Vad är IOP?", "Idéburet offentligt partnerskap är en samverkansform mellan kommunen och en förening."),
]


def _torch_logits(folder: Path, pairs) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    batch = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True,
                      max_length=512, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits[:, 0].numpy()


def test_classifier_logits_match_transformers(tiny_classifier):
    lean = onnx_engine.load_classifier(tiny_classifier)
    assert isinstance(lean, OnnxClassifier) and lean.num_labels == 1
    logits = lean.predict(PAIRS, batch_size=3)
    assert logits.shape == (len(PAIRS),) and logits.dtype == np.float32
    assert np.allclose(logits, _torch_logits(tiny_classifier, PAIRS), atol=1e-4)
    # batched by length, returned in input order
    assert np.allclose(logits, [lean.predict([p])[0] for p in PAIRS], atol=1e-5)
    assert lean.predict([]).shape == (0,)


def test_int8_classifier_stays_close_to_fp32(tiny_classifier):
    """A random tiny head gives nearly equal logits (spread ~1e-4), so ranking agreement says nothing here;
    the int8 logits must stay within 10 % of the fp32 magnitude. The real cross-encoder's agreement is in
    its stamp (int8.calibration_agreement) and in benchmarks/lean.py."""
    fp32 = onnx_engine.load_classifier(tiny_classifier).predict(PAIRS)
    int8 = onnx_engine.load_classifier(tiny_classifier, "onnx-int8").predict(PAIRS)
    assert int8.shape == fp32.shape and np.isfinite(int8).all()
    assert np.abs(int8 - fp32).max() <= 0.1 * np.abs(fp32).max()
    stamp = json.loads((tiny_classifier / "onnx" / "stamp.json").read_text())
    assert stamp["kind"] == "classifier" and stamp["meta"]["inputs"][:2] == ["input_ids", "attention_mask"]


# --- the shared word-embedding table --------------------------------------------------------------


def test_the_embedder_and_the_relevance_model_share_one_embedding_table(embedder):
    from assistant.relevance import load_relevance_model

    relevance = load_relevance_model(Settings())
    records = [onnx_engine._table_record(Path(folder), "onnx")
               for folder in (embedder.model.folder, relevance.folder / onnx_engine.EXPORT_DIR)]
    assert records[0] is not None and records[0]["sha256"] == records[1]["sha256"]  # the frozen e5 table
    assert records[0]["dims"] == [250037, 384]
    assert records[0]["sha256"] in onnx_engine._TABLES
    assert len({r["sha256"] for r in records} & set(onnx_engine._TABLES)) == 1


def test_a_session_on_the_shared_table_gives_the_same_outputs(tiny_encoder):
    import onnxruntime as ort

    out = onnx_engine.export_dir(tiny_encoder)
    ids = np.array([[0, 1500, 98765, 249999, 2], [0, 7, 2, 1, 1]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int64), "token_type_ids": np.zeros_like(ids)}
    for variant in onnx_engine.VARIANTS:
        shared = onnx_engine.open_session(out, variant)
        plain = ort.InferenceSession(str(out / onnx_engine.VARIANTS[variant]), onnx_engine.session_options(),
                                     providers=["CPUExecutionProvider"])
        names = [i.name for i in plain.get_inputs()]
        expected = plain.run(None, {n: feed[n] for n in names})[0]
        assert np.array_equal(shared.run(None, {n: feed[n] for n in names})[0], expected)
        assert onnx_engine._table_record(out, variant)["name"].endswith("word_embeddings.weight")


def test_the_table_record_is_kept_and_redone_when_the_weights_change(tiny_encoder, tmp_path):
    out = tmp_path / "export"
    shutil.copytree(onnx_engine.export_dir(tiny_encoder), out)
    (out / onnx_engine.TABLES).unlink(missing_ok=True)
    first = onnx_engine._table_record(out, "onnx")
    recorded = json.loads((out / onnx_engine.TABLES).read_text())["onnx"]
    assert recorded["table"] == first
    data = out / "model.onnx.data"
    with open(data, "r+b") as f:  # one value of the table changes: another checksum, no sharing by mistake
        f.seek(first["offset"] + 4 * 32 * 5)
        f.write(np.float32(123.0).tobytes())
    assert onnx_engine._table_record(out, "onnx")["sha256"] != first["sha256"]
