"""The shipped relevance model: committed adapter + head merge into a plain HF folder offline, reproduce the
scores recorded at training time, and rank an answering sentence above a non-answering one."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from assistant import crossencoder as ce
from assistant.crossencoder import RerankerConfig, pair_inputs


@pytest.fixture(scope="module")
def settings_cache():
    from assistant.settings import Settings

    return Settings.from_env().model_cache


@pytest.fixture(scope="module")
def scorer(settings_cache):
    return ce.load_scorer(settings_cache)


def test_shipped_weights_are_small_and_described():
    config = RerankerConfig.load()
    adapter = ce.WEIGHTS_DIR / ce.ADAPTER_FILE
    assert adapter.stat().st_size < 8_000_000
    assert 1 <= config.depth <= 12
    assert config.format_version == ce.FORMAT_VERSION
    assert (ce.WEIGHTS_DIR / "README.md").is_file()


def test_pair_inputs_formats_header_and_prefixes():
    a, b = pair_inputs("  Vad kostar\nregistreringen? ", "Den kostar 1 200 kronor.", "Avgifter", "Registrering")
    assert a == "query: Vad kostar registreringen?"
    assert b == "passage: Avgifter > Registrering\nDen kostar 1 200 kronor."
    assert pair_inputs("Fråga?", "Svar.")[1] == "passage: Svar."


def test_merged_state_adds_the_scaled_lora_product_and_drops_unused_layers():
    rng = np.random.default_rng(0)
    config = RerankerConfig(depth=1, rank=2, alpha=4.0)
    base = {"embeddings.word_embeddings.weight": rng.standard_normal((5, 3)).astype(np.float16),
            "pooler.dense.weight": np.zeros((3, 3), np.float16)}
    adapter = {k: rng.standard_normal((1, 3)).astype(np.float16) for k in ce.HEAD_KEYS}  # shapes do not matter
    for layer in (0, 1):
        for target in ce.LORA_TARGETS:
            base[f"encoder.layer.{layer}.{target}.weight"] = rng.standard_normal((4, 3)).astype(np.float16)
            base[f"encoder.layer.{layer}.{target}.bias"] = rng.standard_normal(4).astype(np.float16)
    for target in ce.LORA_TARGETS:
        adapter[f"encoder.layer.0.{target}.lora_A"] = rng.standard_normal((2, 3)).astype(np.float16)
        adapter[f"encoder.layer.0.{target}.lora_B"] = rng.standard_normal((4, 2)).astype(np.float16)
    out, head = ce.merged_state(base, adapter, config)
    key = "encoder.layer.0.attention.self.query"
    want = base[f"{key}.weight"].astype(np.float32) + 2.0 * (
        adapter[f"{key}.lora_B"].astype(np.float32) @ adapter[f"{key}.lora_A"].astype(np.float32))
    np.testing.assert_allclose(out[f"{key}.weight"], want, rtol=1e-6)
    assert out[f"{key}.bias"].dtype == np.float16  # untouched tensors keep the base dtype
    assert not any(".layer.1." in k or k.startswith("pooler") for k in out)
    assert sorted(head) == sorted(k.removeprefix("head.") for k in ce.HEAD_KEYS)


def test_encode_pairs_truncates_the_question_first(scorer):
    tok = scorer.tokenizer
    long_q = "Vad " * 200 + "?"
    long_s = "ord " * 300
    ids, mask = ce.encode_pairs(tok, [pair_inputs(long_q, long_s), pair_inputs("Kort?", "Kort svar.")], 128, 48)
    assert ids.shape == (2, 128)
    assert mask[0].sum() == 128 and mask[1].sum() < 20
    first_sep = list(ids[0]).index(2)
    assert first_sep == 1 + 48  # <s> + 48 question tokens
    assert ids[1, mask[1].sum() - 1] == 2 and ids[1, mask[1].sum()] == 1  # </s> then padding


def test_merged_folder_is_a_plain_checksummed_hf_model(scorer, settings_cache):
    folder = ce.build_reranker_dir(settings_cache)
    assert folder == scorer.folder
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["XLMRobertaModel"]
    assert (folder / ce.HEAD_FILE).is_file()
    assert config["num_hidden_layers"] == RerankerConfig.load().depth
    assert ce.is_valid(folder, json.loads((folder / "checksums.json").read_text())["adapter"])
    assert not ce.is_valid(folder, "0" * 64)  # another adapter would be rebuilt


def test_merged_model_reproduces_the_scores_recorded_at_training_time(scorer):
    recorded = json.loads((ce.WEIGHTS_DIR / ce.REFERENCE_FILE).read_text(encoding="utf-8"))
    assert len(recorded) >= 4
    pairs = [pair_inputs(r["question"], r["sentence"], r["title"], r["section"]) for r in recorded]
    got = scorer.score(pairs)
    np.testing.assert_allclose(got, [r["logit"] for r in recorded], atol=1e-3)
    assert np.ptp(got) > 1.0  # a trained model, not a constant


@pytest.mark.parametrize(
    ("question", "answers", "other"),
    [
        ("Hur länge gäller ett visum för affärsbesök?",
         "Ett visum för affärsbesök gäller i högst 90 dagar under en period på 180 dagar.",
         "Ambassaden gör en bedömning av syftet med besöket."),
        ("Vem beslutar om bygglov i kommunen?",
         "Det är byggnadsnämnden i kommunen som beslutar om bygglov.",
         "Bygglov behövs för att bygga ett nytt hus, men inte för en friggebod."),
        ("Vilket år bildades föreningen?",
         "Föreningen bildades 1994 av tolv arbetsintegrerande sociala företag.",
         "Föreningen har i dag drygt 300 medlemmar i hela landet."),
    ],
)
def test_answering_sentence_scores_above_a_related_one(scorer, question, answers, other):
    good, bad = scorer.score([pair_inputs(question, answers), pair_inputs(question, other)])
    assert good > bad


def test_a_weights_file_is_hashed_again_only_when_its_size_or_mtime_changed(tmp_path):
    from assistant.loaders import sha256_of

    model, head = tmp_path / "model.safetensors", tmp_path / ce.HEAD_FILE
    model.write_bytes(b"w" * 4096)
    head.write_bytes(b"h" * 64)
    stamp = tmp_path / "checksums.json"
    stamp.write_text(json.dumps({"model.safetensors": sha256_of(model), ce.HEAD_FILE: sha256_of(head),
                                 "adapter": "a" * 64}))  # a stamp of before the recorded sizes and times
    assert ce.is_valid(tmp_path, "a" * 64)  # hashed, then recorded
    assert json.loads(stamp.read_text())["seen"]["model.safetensors"][0] == 4096

    first = model.stat().st_mtime_ns
    model.write_bytes(b"x" * 4096)  # same size, new content, new mtime: hashed and refused
    os.utime(model, ns=(first + 10**9, first + 10**9))  # (a write in the same clock tick keeps the mtime)
    assert not ce.is_valid(tmp_path, "a" * 64)
    model.write_bytes(b"w" * 4096)  # the content of the stamp again, touched: accepted and recorded
    os.utime(model, ns=(first + 2 * 10**9, first + 2 * 10**9))
    assert ce.is_valid(tmp_path, "a" * 64)
    seen = json.loads(stamp.read_text())["seen"]["model.safetensors"]
    assert seen == [4096, model.stat().st_mtime_ns]

    # What the record buys: a file with the recorded size and mtime is trusted without reading it.
    model.write_bytes(b"y" * 4096)
    os.utime(model, ns=(seen[1], seen[1]))
    assert ce.is_valid(tmp_path, "a" * 64)


def test_pooled_states_are_what_the_head_reads(scorer):
    """`pooled` (benchmarks/answerability_probe.py reads it) gives, in input order, the states whose head output
    is `score`: one batching and pooling for both."""
    import torch

    pairs = [pair_inputs("Vad är direktupphandlingsgränsen?", "Gränsen är 700 000 kronor.", "LOU"),
             pair_inputs("Vem äger projektet?", "SKR var projektägare och Uddevalla kommun partner i projektet, "
                         "som pågick från 2021 till 2022.")]
    pooled = scorer.pooled(pairs)
    assert pooled.shape == (2, scorer.model.encoder.config.hidden_size)
    with torch.inference_mode():
        logits = scorer.model.head(torch.from_numpy(pooled)).numpy()
    np.testing.assert_allclose(logits, scorer.score(pairs), atol=1e-5)
    assert scorer.score([]).shape == (0,)
