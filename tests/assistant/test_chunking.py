"""assistant.chunking with the real tokenizer: never a cut sentence, never over the model's 512 tokens,
never across a heading or a PDF page; stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.chunking import chunk_document
from assistant.loaders import CorpusFile, load
from assistant.text import normalize_ws, split_sentences, without_source_notes, words


def _long_paragraph(n: int, seed: int = 0) -> str:
    """One paragraph of ``n`` Swedish legal sentences, full of abbreviations that must not split."""
    out = []
    for i in range(seed, seed + n):
        out.append(
            f"Enligt {i % 20 + 1} kap. {i % 30 + 1} § LOU ska kommun nummer {i} dokumentera direktupphandling "
            f"nummer {i}, t.ex. genom ett skriftligt beslut, bl.a. när värdet överstiger {1000 + i * 17} kronor "
            f"(se prop. 2015/16:195 s. {400 + i})."
        )
    return " ".join(out)


def _write_long_markdown(path: Path) -> Path:
    body = [
        "---", "title: En lång vägledning med en ganska lång titel om direktupphandling", "---", "",
        "# Ignorerad rubrik", "",
        "## Första kapitlet", "",
        _long_paragraph(45, 0), "",
        "Ett kort stycke efter det långa.", "",
        "### Ett underavsnitt", "",
        _long_paragraph(8, 100), "",
        "## Andra kapitlet", "",
        # a "sentence" without any full stop that is longer than the model can read: a long list line
        " ".join(f"post{i} kostar {i * 3} kronor;" for i in range(400)), "",
        "Kort avslutning.", "",
    ]
    path.write_text("\n".join(body), encoding="utf-8")
    return path


@pytest.fixture
def long_doc(tmp_path):
    path = _write_long_markdown(tmp_path / "lang.md")
    return load(CorpusFile(tmp_path, path))


def _model_tokens(tokenizer, embedder, chunk) -> int:
    """Counted independently of Embedder.count_tokens: the model's Hugging Face tokenizer on exactly what
    the model is fed."""
    return len(tokenizer(embedder.passage_prefix + chunk.embedding_text(), add_special_tokens=True)["input_ids"])


@pytest.mark.parametrize("target", [64, 200, 512])
def test_no_chunk_exceeds_the_model_limit_including_prefix_and_title(embedder, reference_tokenizer, long_doc,
                                                                     target):
    assert embedder.max_tokens == 512
    chunks = chunk_document(long_doc, embedder.count_tokens, target, embedder.max_tokens)
    assert len(chunks) > 1
    for chunk in chunks:
        assert _model_tokens(reference_tokenizer, embedder, chunk) <= 512, chunk.text[:80]


@pytest.mark.parametrize("target", [64, 200, 512])
def test_no_sentence_is_cut(embedder, long_doc, target):
    chunks = chunk_document(long_doc, embedder.count_tokens, target, embedder.max_tokens)
    hard = embedder.max_tokens
    for block in long_doc.blocks:
        same_place = [normalize_ws(c.text) for c in chunks if (c.section, c.page) == (block.section, block.page)]
        for sentence in split_sentences(block.text):
            if embedder.count_tokens(sentence) >= hard:
                continue  # only a "sentence" the model cannot read at all may be cut (at word boundaries)
            assert any(normalize_ws(sentence) in c for c in same_place), sentence[:80]
    # and every chunk starts and ends on a sentence boundary of its source
    source_sentences = {normalize_ws(s) for b in long_doc.blocks for s in split_sentences(b.text)}
    overlong = [s for s in source_sentences if embedder.count_tokens(s) >= hard]
    for chunk in chunks:
        for inner in map(normalize_ws, split_sentences(chunk.text)):
            assert inner in source_sentences or any(inner in s for s in overlong), inner[:80]


def test_overlong_sentence_is_split_at_word_boundaries_losing_nothing(embedder, long_doc):
    chunks = chunk_document(long_doc, embedder.count_tokens, 200, embedder.max_tokens)
    overlong = next(b for b in long_doc.blocks if b.text.startswith("post0 "))
    assert embedder.count_tokens(overlong.text) > embedder.max_tokens
    section = [b for b in long_doc.blocks if b.section == overlong.section]
    pieces = [c for c in chunks if c.section == overlong.section]
    assert len(pieces) > 1
    assert words(" ".join(c.text for c in pieces)) == words(" ".join(b.text for b in section))
    padded = f" {normalize_ws(overlong.text)} "
    for chunk in pieces:
        for para in chunk.text.split("\n\n"):
            para = normalize_ws(para)
            # a whole block, or a run of whole words of the overlong line
            assert para in {normalize_ws(b.text) for b in section} or f" {para} " in padded, para[:80]


def test_all_text_is_kept_in_order(embedder, long_doc):
    chunks = chunk_document(long_doc, embedder.count_tokens, 128, embedder.max_tokens)
    assert words(" ".join(c.text for c in chunks)) == words(" ".join(b.text for b in long_doc.blocks))
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_target_size_is_respected_when_sentences_allow_it(embedder, long_doc):
    target = 96
    chunks = chunk_document(long_doc, embedder.count_tokens, target, embedder.max_tokens)
    for chunk in chunks:
        if len(split_sentences(chunk.text)) > 1:  # a single long sentence may exceed the target, not more
            assert embedder.count_tokens(chunk.embedding_text()) <= target


def test_chunks_do_not_cross_sections_or_pages(embedder, corpus):
    for path in (corpus.pdf, corpus.markdown, corpus.docx, corpus.html):
        doc = load(CorpusFile(corpus.dir, path))
        chunks = chunk_document(doc, embedder.count_tokens, 200, embedder.max_tokens)
        for chunk in chunks:
            own = [b for b in doc.blocks if (b.section, b.page) == (chunk.section, chunk.page)]
            assert own, (path.name, chunk.section, chunk.page)
            assert all(normalize_ws(s) in normalize_ws(" ".join(b.text for b in own))
                       for s in split_sentences(chunk.text))
    pdf_chunks = chunk_document(load(CorpusFile(corpus.dir, corpus.pdf)), embedder.count_tokens, 512, 512)
    assert [c.page for c in pdf_chunks] == [1, 2, 3]  # small pages: one chunk each, never merged


def test_chunk_fields_ids_and_metadata(embedder, corpus):
    doc = load(CorpusFile(corpus.dir, corpus.markdown))
    first = chunk_document(doc, embedder.count_tokens, 200, embedder.max_tokens)
    again = chunk_document(load(CorpusFile(corpus.dir, corpus.markdown)), embedder.count_tokens, 200, 512)
    assert [c.id for c in first] == [c.id for c in again]  # stable across runs
    assert len({c.id for c in first}) == len(first)
    for c in first:
        assert c.source == "direktupphandling.md"
        assert c.corpus_dir == str(corpus.dir.resolve())
        assert c.title == "Direktupphandling för kommuner"
        assert "title" not in c.metadata and c.metadata["valid_as_of"] == "2026-11-01"
        assert c.embedding_text().startswith(" > ".join(p for p in (c.title, c.section) if p) + "\n")


def test_changed_text_changes_ids_and_another_folder_gives_other_ids(embedder, corpus, tmp_path):
    before = chunk_document(load(CorpusFile(corpus.dir, corpus.markdown)), embedder.count_tokens, 200, 512)
    corpus.markdown.write_text(corpus.markdown.read_text(encoding="utf-8").replace("700 000", "800 000"),
                               encoding="utf-8")
    after = chunk_document(load(CorpusFile(corpus.dir, corpus.markdown)), embedder.count_tokens, 200, 512)
    changed = [a.id != b.id for a, b in zip(before, after, strict=True)]
    assert changed == [("700 000" in b.text) for b in before]
    other = tmp_path / "annan"
    other.mkdir()
    copy = other / corpus.markdown.name
    copy.write_bytes(corpus.markdown.read_bytes())
    elsewhere = chunk_document(load(CorpusFile(other, copy)), embedder.count_tokens, 200, 512)
    assert not {c.id for c in elsewhere} & {c.id for c in after}


def test_source_notes_do_not_count_against_the_token_budget(tmp_path):
    # the models read a chunk without its "(källa: …)" notes (Chunk.embedding_text), so a spelled-out source
    # must not split paragraphs that fit together; counted here in words, a stand-in for the tokenizer
    note = "(källa: Upphandlingsmyndigheten, reserverad upphandling och regler om reserverad upphandling)"
    path = tmp_path / "c" / "not.md"
    path.parent.mkdir()
    path.write_text(f"## Avsnitt\n\nKommunen får reservera kontraktet för sociala företag {note}.\n\n"
                    f"Minst 30 procent av de anställda ska tillhöra målgruppen {note}.\n", encoding="utf-8")
    doc = load(CorpusFile(path.parent, path))
    chunks = chunk_document(doc, lambda text: len(text.split()), target_tokens=25, max_tokens=512)
    assert [c.text for c in chunks] == ["\n\n".join(b.text for b in doc.blocks)]
    assert note in chunks[0].text and note not in chunks[0].embedding_text()


def test_a_tables_source_column_does_not_count_against_the_token_budget(tmp_path):
    # the loader spells the keys of a "Källa" column out with the sources' names: the models read the rows
    # without them, so long names must not split a table into rows without their header
    path = tmp_path / "c" / "tabell.md"
    path.parent.mkdir()
    name = "Konkurrensverket, gamla tröskelvärden och direktupphandlingsgränser: konkurrensverket.se/upphandling"
    path.write_text("## Belopp\n\n| Period | Gräns | Källa |\n|---|---|---|\n| 2022–2023 | 700 000 kronor | S53 |\n"
                    "| 2024–2025 | 800 000 kronor | S53 |\n\n## Källor\n\n"
                    f"- S53 – {name}\n", encoding="utf-8")
    doc = load(CorpusFile(path.parent, path))
    chunks = chunk_document(doc, lambda text: len(text.split()), target_tokens=30, max_tokens=512)
    assert [c.text for c in chunks] == [doc.blocks[0].text]  # verbatim, the names spelled out
    assert name in chunks[0].text and "tröskelvärden" not in chunks[0].embedding_text()
    assert "| 2024–2025 | 800 000 kronor |" in chunks[0].embedding_text()


def test_a_table_over_the_budget_is_split_by_rows_each_part_under_its_header(tmp_path):
    # packed as sentences, the rows ran together on one line and a later chunk had no header: its source
    # cells were read by the models and no table rendered
    path = tmp_path / "c" / "lang-tabell.md"
    path.parent.mkdir()
    rows = [f"| {2000 + i} | {500 + i * 10} 000 kronor | Upphandlingsmyndigheten, tabell {i} |" for i in range(12)]
    path.write_text("## Belopp\n\n| År | Gräns | Källa |\n|---|---|---|\n" + "\n".join(rows) + "\n", encoding="utf-8")
    doc = load(CorpusFile(path.parent, path))
    count = lambda text: len(text.split())  # noqa: E731  (words: a stand-in for the tokenizer)
    chunks = chunk_document(doc, count, target_tokens=40, max_tokens=512)

    assert len(chunks) > 1
    head = "| År | Gräns | Källa |\n|---|---|---|"
    for chunk in chunks:
        assert chunk.text.startswith(head + "\n")
        assert all(line.startswith("|") and line.endswith("|") for line in chunk.text.split("\n"))  # a row a line
        assert "Upphandlingsmyndigheten" not in chunk.embedding_text()  # the source column, in every part
        assert count(without_source_notes(chunk.text)) <= 40
    body = [line for chunk in chunks for line in chunk.text.split("\n")[2:]]
    assert body == rows  # every row once, in order


def test_a_table_row_longer_than_the_model_is_cut_not_truncated(tmp_path):
    path = tmp_path / "c" / "bred.md"
    path.parent.mkdir()
    wide = "| " + " ".join(f"ord{i}" for i in range(80)) + " | 1 |"
    path.write_text(f"| Text | Nr |\n|---|---|\n| kort | 2 |\n{wide}\n", encoding="utf-8")
    doc = load(CorpusFile(path.parent, path))
    chunks = chunk_document(doc, lambda text: len(text.split()), target_tokens=20, max_tokens=30)
    assert all(len(c.text.split()) <= 30 for c in chunks)
    assert " ".join(" ".join(c.text.split()) for c in chunks).count("ord79") == 1
