"""assistant.relevance: a prefetch (the CLI's, before its imports) hands its loaded model to the first load
with the same settings, and loads nothing that is not merged and exported yet."""

from __future__ import annotations

import pytest

from assistant import relevance
from assistant.settings import Settings


def test_a_prefetch_before_the_first_build_loads_and_builds_nothing(tmp_path):
    settings = Settings(home=tmp_path)
    relevance.prefetch(settings)
    future = relevance._PREFETCHED.pop(relevance._prefetch_key(settings))
    assert future.result(timeout=60) is None  # the build stays with the caller, in the foreground
    assert not settings.model_cache.exists()


@pytest.mark.slow
def test_the_first_load_takes_the_prefetched_model_and_later_ones_load_their_own():
    settings = Settings()
    relevance.prefetch(settings)
    prefetched = relevance._PREFETCHED[relevance._prefetch_key(settings)].result(timeout=300)
    assert prefetched is not None
    assert relevance.load_relevance_model(settings) is prefetched
    assert relevance._prefetch_key(settings) not in relevance._PREFETCHED
    again = relevance.load_relevance_model(settings)
    assert again is not prefetched
    pairs = [("query: Vad är direktupphandlingsgränsen?", "passage: Gränsen är 700 000 kronor.")]
    assert again.logits(pairs).tolist() == prefetched.logits(pairs).tolist()
