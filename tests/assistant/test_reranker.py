"""The optional cross-encoder path: no reranker ships offline, so the test builds a tiny one itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.retrieval import Retriever


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, model_dir, reference_tokenizer) -> Path:
    """A randomly initialised one-layer XLM-R sequence classifier with the e5 tokenizer, saved as a
    normal Hugging Face folder that sentence-transformers' CrossEncoder loads by path."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-cross-encoder")
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=reference_tokenizer.vocab_size + 2, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=514, num_labels=1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    XLMRobertaForSequenceClassification(config).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (out / name).write_bytes((model_dir / name).read_bytes())
    (out / "config.json").write_text(
        json.dumps({**json.loads((out / "config.json").read_text()), "sentence_transformers": {"activation_fn":
                    "torch.nn.modules.linear.Identity"}})
    )
    return out


def test_reranker_reorders_candidates_by_cross_encoder_score(served, embedder, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    settings = served.settings.with_(reranker=str(tiny_cross_encoder))
    retriever = Retriever(served.assistant.loaded_index, embedder, settings)
    question = "Får kommunen reservera ett kontrakt?"
    result = retriever.search(question, k=3)

    assert "rerank" in result.timings_ms
    assert len(result.hits) == 3
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    # the scores are the cross-encoder's own, for exactly these passages
    expected = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict(
        [(question, h.chunk.embedding_text()) for h in result.hits]
    )
    assert scores == pytest.approx([float(s) for s in expected], rel=1e-4, abs=1e-5)
    # without a reranker the fused scores are of another kind entirely
    plain = Retriever(served.assistant.loaded_index, embedder, served.settings).search(question, k=3)
    assert "rerank" not in plain.timings_ms
