"""assistant.lexical: Swedish BM25 with stemming, compound splitting against the corpus vocabulary, and a
few English domain terms."""

from __future__ import annotations

from assistant.lexical import Decompounder, LexicalIndex, stem, translate_english

TEXTS = [
    "Direktupphandlingsgränsen är 700 000 kronor.",  # the compound only
    "En direkt fråga om avtalet ställdes i förväg.",  # "direkt"
    "Upphandling av städning sker varje år.",  # "upphandling"
    "Gränsen mot Norge är lång.",  # "gränsen"
    "Föreningen anordnar kurser i svenska.",
]


def test_compound_is_split_into_parts_known_from_the_corpus():
    index = LexicalIndex(TEXTS)
    parts = index.decompounder.split("direktupphandlingsgränsen")
    assert [stem(p) for p in parts] == [stem("direkt"), stem("upphandling"), stem("gränsen")]
    tokens = index.tokens("Direktupphandlingsgränsen")
    assert {stem("direkt"), stem("upphandling"), stem("gränsen")} <= set(tokens)


def test_question_with_separate_words_finds_the_compound():
    index = LexicalIndex(TEXTS)
    hits = index.search("Vad är gränsen för direktupphandling?", 5)
    assert hits[0][0] == 0
    assert all(score > 0 for _, score in hits)


def test_unknown_parts_are_not_invented():
    assert Decompounder({"kommun", "företag"}).split("direktupphandlingsgränsen") == ()
    assert Decompounder({"direkt", "upphandling"}).split("kort") == ()  # short words stay whole


def test_inflections_match_through_stemming():
    index = LexicalIndex(TEXTS)
    hits = index.search("föreningarna", 5)
    assert [i for i, _ in hits] == [4]


def test_english_domain_terms_reach_swedish_text():
    index = LexicalIndex(TEXTS)
    hits = index.search("procurement", 5)
    assert hits and hits[0][0] in (0, 2)
    assert {i for i, _ in hits} <= {0, 2}


def test_stopword_only_or_empty_queries_find_nothing():
    index = LexicalIndex(TEXTS)
    assert index.search("vad är det som finns", 5) == []
    assert index.search("", 5) == []


def test_search_respects_n_and_orders_by_score():
    index = LexicalIndex(TEXTS)
    hits = index.search("gränsen upphandling direkt", 2)
    assert len(hits) == 2
    assert hits[0][1] >= hits[1][1]


def test_english_phrases_are_translated_before_words():
    assert translate_english("When is a Direct Award allowed?") == "When is a direktupphandling allowed?"
    assert translate_english("the direct award threshold") == "the direktupphandlingsgräns"
    index = LexicalIndex(TEXTS)
    hits = index.search("direct award threshold", 5)
    assert hits[0][0] == 0  # the compound, not "En direkt fråga" nor "Gränsen mot Norge"
