"""benchmarks/train_reranker.py: the synthetic near misses (--swap-share) are what they claim to be, a
question the paragraph no longer answers, made from the question's own name, year or number."""

from __future__ import annotations

import random

from benchmarks.train_reranker import entities, entity_pool, swapped_question

PARAGRAPH = "Stockholms högskola grundades 1878 och blev universitet 1960. Den låg först vid Norrtullsgatan."
ARTICLE = [PARAGRAPH, "Uppsala universitet grundades 1477 av ärkebiskop Jakob Ulvsson.",
           "Lunds universitet fick 1666 sitt privilegium av Karl XI och hade 40 professorer."]


def test_entities_skip_a_sentence_initial_capital_and_tell_years_from_numbers():
    assert entities("När grundades Stockholms högskola 1878 med 40 lärare?") == [
        ("name", "Stockholms"), ("year", "1878"), ("number", "40")]
    assert ("name", "Uppsala") not in entities("Uppsala universitet grundades 1477.")


def test_a_swap_takes_an_entity_the_gold_sentence_holds_and_one_the_paragraph_lacks():
    pool = entity_pool(ARTICLE)
    gold = "Stockholms högskola grundades 1878 och blev universitet 1960."
    seen = set()
    for seed in range(20):
        swapped = swapped_question("När blev Stockholms högskola universitet 1960?", gold, PARAGRAPH, pool,
                                   random.Random(seed))
        assert swapped and swapped != "När blev Stockholms högskola universitet 1960?"
        new = {e for _, e in entities(swapped)} - {"Stockholms", "1960"}
        assert len(new) == 1 and all(e not in PARAGRAPH for e in new), swapped
        seen.add(swapped)
    # both the name and the year get swapped, each for one of its own kind
    assert any("1960" not in s and any(y in s for y in ("1477", "1666")) for s in seen)
    assert any("Stockholms" not in s for s in seen)


def test_no_swap_when_the_gold_sentence_holds_none_of_the_question_entities():
    pool = entity_pool(ARTICLE)
    assert swapped_question("Var låg högskolan först?", "Den låg först vid Norrtullsgatan.", PARAGRAPH, pool,
                            random.Random(0)) is None
