"""assistant.lexical: Swedish BM25 with stemming, compound splitting against the corpus vocabulary, and a
few English domain terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant import lexical
from assistant.lexical import (
    KNOWN,
    MIN_PART,
    STOPWORDS,
    TOKENS,
    VOCABULARY,
    Decompounder,
    LexicalIndex,
    TermTable,
    stem,
    translate_english,
)
from assistant.text import words

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


QUERIES = ["Vad är gränsen för direktupphandling?", "direktupphandlingsgränsen direkt direkt",
           "procurement threshold", "föreningarna", "okänt ord xyzzy", "Gränsen mot Norge"]


def test_a_saved_index_serves_the_same_scores_bit_for_bit_without_mapping_its_files(tmp_path):
    built = LexicalIndex(TEXTS)
    built.save(tmp_path)
    served = LexicalIndex.load(tmp_path)
    assert served.bm25 is None  # served from the term tables and pread postings, not bm25s' dict and mmap
    for query in QUERIES:
        assert served.tokens(query, translate=True) == built.tokens(query, translate=True)
        assert np.array_equal(served.scores(query), built.scores(query)), query
    assert served.search("Vad är gränsen för direktupphandling?", 5)[0][0] == 0
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(tmp_path) not in maps.read_text()


def test_a_generation_saved_before_the_term_tables_still_serves(tmp_path):
    built = LexicalIndex(TEXTS)
    built.save(tmp_path)
    (tmp_path / TOKENS).unlink()
    (tmp_path / KNOWN).unlink()
    vocabulary = {w for t in TEXTS for w in words(t) if w not in STOPWORDS and len(w) >= MIN_PART}
    (tmp_path / VOCABULARY).write_text("\n".join(sorted(vocabulary)), encoding="utf-8")  # as it was saved
    served = LexicalIndex.load(tmp_path)
    for query in QUERIES:
        assert np.array_equal(served.scores(query), built.scores(query)), query


def test_term_table_finds_every_term_and_nothing_else():
    terms = {f"ord{i}": i for i in range(500)}
    table = TermTable.build(terms)
    assert all(table.get(t) == v for t, v in terms.items())
    assert table.get("ord500") is None and "ord-1" not in table and len(table) == 500


def test_term_table_keeps_colliding_terms_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(lexical, "term_hash", lambda term: len(term))  # a hash that collides on purpose
    table = TermTable.build({"a": 1, "bb": 2, "cc": 3, "ddd": 4})
    table.save(tmp_path / "t.npz")
    for loaded in (table, TermTable.load(tmp_path / "t.npz")):
        assert [loaded.get(t) for t in ("a", "bb", "cc", "ddd")] == [1, 2, 3, 4]
        assert loaded.get("ee") is None  # shares the colliding hash of "bb" and "cc", is neither
        assert loaded.get("fff") == 4  # a string outside the table whose hash is a term's: the stated risk


def test_the_split_memo_stays_bounded_and_splits_stay_the_same(monkeypatch):
    """A serving process meets question words without end: the memo is emptied when full, never grows past it."""
    from assistant import lexical

    known = {"direkt", "upphandling", "gräns", "kommun", "förbund"}
    words = [f"okäntord{n:03d}" for n in range(40)] + ["direktupphandlingsgräns", "kommunförbund"]
    unbounded = [Decompounder(known).split(w) for w in words]
    monkeypatch.setattr(lexical, "SPLIT_CACHE", 5)
    splitter = Decompounder(known)
    for word, expected in zip(words * 2, unbounded * 2, strict=True):
        assert splitter.split(word) == expected
        assert len(splitter._cache) <= 5
    assert unbounded[-1] == ("kommun", "förbund") and unbounded[-2][0] == "direkt"
