"""Check that a citation's quote really stands in the cited file (and on the cited PDF page)."""

from __future__ import annotations

from pathlib import Path

from assistant import loaders
from assistant.text import normalize_ws
from assistant.types import Citation


def verify(citation: Citation, corpus_dir: str | Path | None = None,
           limits: loaders.Limits | None = None) -> str | None:
    """None when the quote is found verbatim (whitespace-normalised); otherwise the reason. The file is
    read and decoded exactly as the indexer read it (``limits``: those of the index's settings)."""
    root = Path(corpus_dir or citation.corpus_dir)
    path = root / citation.source
    if not path.is_file():
        return f"filen finns inte: {citation.source}"
    try:
        text = loaders.document_text(loaders.CorpusFile(root, path), citation.page, limits)
    except (loaders.LoadError, OSError) as exc:
        return f"filen kan inte läsas: {exc}"
    if normalize_ws(citation.quote) not in normalize_ws(text):
        where = f" på sidan {citation.page}" if citation.page else ""
        return f"citatet finns inte ordagrant i {citation.source}{where}"
    return None
