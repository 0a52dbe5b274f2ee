"""Structure-aware chunking: paragraphs of one section (and one PDF page) packed up to a token budget.

A chunk never crosses a heading or a page and never cuts a sentence, so every chunk can be cited as
"title, section, page". Token counts use the embedding model's own tokenizer, prefix included, so no
chunk is silently truncated by the model (e5: 512 tokens).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from itertools import groupby

from assistant.loaders import LoadError
from assistant.text import split_sentences, table_parts, without_source_notes
from assistant.types import Block, Chunk, SourceDocument

# Bump when the output of this module changes: the index is then rebuilt.
CHUNKER_VERSION = "12"  # 12: an HTML table with a header row stays a table when its cells hold lists


def chunk_document(
    doc: SourceDocument,
    count_tokens: Callable[[str], int],
    target_tokens: int,
    max_tokens: int,
    max_chunks: int | None = None,
) -> list[Chunk]:
    """``max_chunks``: a file that would give more chunks is refused (a LoadError) as soon as it does,
    before anything is embedded (``Settings.max_chunks``)."""
    def model_tokens(text: str) -> int:  # the models read the text without its source notes (Chunk.embedding_text)
        return count_tokens(without_source_notes(text))

    texts: list[tuple[str, str, int | None]] = []
    for (section, page), group in groupby(doc.blocks, key=lambda b: (b.section, b.page)):
        # room left for the text once the title and section line are added
        header = count_tokens(_header(doc.title, section)) if (doc.title or section) else 0
        budget = max(16, min(target_tokens, max_tokens) - header)
        hard = max(16, max_tokens - header)
        for text in _pack(list(group), model_tokens, budget, hard):
            texts.append((text, section, page))
            if max_chunks is not None and len(texts) > max_chunks:
                raise LoadError(f"för många avsnitt: mer än {max_chunks:_} ".replace("_", " ")
                                + "(ändra med ASSISTANT_MAX_CHUNKS)")
    meta = {k: v for k, v in doc.metadata.items() if k != "title"}
    chunks = []
    for i, (text, section, page) in enumerate(texts):
        digest = hashlib.sha1(f"{doc.key}\0{i}\0{text}".encode()).hexdigest()[:16]
        chunks.append(
            Chunk(
                id=f"{hashlib.sha1(doc.key.encode()).hexdigest()[:12]}-{i:04d}-{digest}",
                text=text,
                source=doc.source,
                corpus_dir=str(doc.corpus_dir.resolve()),
                title=doc.title,
                section=section,
                page=page,
                position=i,
                metadata=meta,
            )
        )
    return chunks


def _header(title: str, section: str) -> str:
    return " > ".join(p for p in (title, section) if p) + "\n"


def _pack(blocks: list[Block], count: Callable[[str], int], budget: int, hard: int) -> Iterable[str]:
    """Greedy packing of paragraphs; a paragraph over the budget is packed sentence by sentence."""
    units: list[tuple[str, int, str]] = []  # (text, tokens, joiner before it)
    for block in blocks:
        n = count(block.text)
        if n <= budget:
            units.append((block.text, n, "\n\n"))
            continue
        table = _table_pieces(block.text, count, budget, hard)
        if table is not None:
            units += [(piece, count(piece), "\n\n") for piece in table]
            continue
        for i, sentence in enumerate(split_sentences(block.text)):
            for piece in _split_overlong(sentence, count, hard):
                units.append((piece, count(piece), "\n\n" if i == 0 else " "))
    current: list[str] = []
    used = 0
    for text, n, joiner in units:
        if current and used + n > budget:
            yield "".join(current).strip()
            current, used = [], 0
        current.append((joiner if current else "") + text)
        used += n
    if current:
        yield "".join(current).strip()


def _table_pieces(text: str, count: Callable[[str], int], budget: int, hard: int) -> list[str] | None:
    """A Markdown table over the budget as tables of whole rows, each under the table's header and delimiter
    rows: packed as sentences its rows ran together on one line, so a later chunk's rows had no header (the
    source column could not be told apart, a reader could not tell what a cell means) and no table
    rendered. A row too long for the model even alone is cut at words like any overlong text, so nothing is
    lost to truncation. None when ``text`` is not one table."""
    parts = table_parts(text)
    if parts is None:
        return None
    head, rows = parts
    pieces: list[str] = []
    current: list[str] = []
    for row in rows:
        if current and count("\n".join([*head, *current, row])) > budget:
            pieces.append("\n".join([*head, *current]))
            current = []
        current.append(row)
    if current:
        pieces.append("\n".join([*head, *current]))
    return [cut for piece in pieces for cut in _split_overlong(piece, count, hard)]


def _split_overlong(sentence: str, count: Callable[[str], int], hard: int) -> list[str]:
    """Last resort for a "sentence" longer than the model can read (tables, lists without stops):
    cut at word boundaries, so nothing is lost to truncation."""
    if count(sentence) <= hard:
        return [sentence]
    words = sentence.split(" ")
    pieces, current = [], []
    for word in words:
        if current and count(" ".join([*current, word])) > hard:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces
