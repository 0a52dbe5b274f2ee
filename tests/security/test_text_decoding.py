"""Text files are decoded as UTF-8 with a replacement per bad byte (not cp1252 for the whole file because of
one stray byte), and quote checks read the file exactly as the indexer did: citations stay verifiable."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from assistant.cite import verify
from assistant.cli import cli
from assistant.loaders import CorpusFile, document_text, load
from assistant.text import normalize_ws
from assistant.types import Citation

KAFE = "Föreningen Vägen ut driver ett kafé i Göteborg där deltagarna får arbetsträning."
# UTF-8 text with one cp1252 en dash (0x96) pasted into it: invalid as UTF-8
STRAY = ("# Vägen ut\n\n" + KAFE + "\n\nÖppettider: måndag ").encode("utf-8") + b"\x96" + b" fredag.\n"


def _ask(corpus: Path, index: Path, question: str) -> dict:
    result = CliRunner().invoke(cli, ["ask", "--json", "--corpus", str(corpus), "--index", str(index), question])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_stray_byte_does_not_turn_a_utf8_file_into_mojibake(tmp_path):
    assert STRAY.decode("utf-8", errors="replace").count("\ufffd") == 1
    path = tmp_path / "vagen.md"
    path.write_bytes(STRAY)
    doc = load(CorpusFile(tmp_path, path))
    assert doc.title == "Vägen ut"
    assert [b.text for b in doc.blocks] == [KAFE, "Öppettider: måndag \ufffd fredag."]
    # the quote check reads the very same text
    raw = document_text(CorpusFile(tmp_path, path))
    assert KAFE in raw and "Öppettider: måndag \ufffd fredag." in raw and "Ã" not in raw


def test_a_cited_sentence_of_such_a_file_verifies(tmp_path, embedder):
    corpus = tmp_path / "korpus"
    corpus.mkdir()
    (corpus / "vagen.md").write_bytes(STRAY)
    (corpus / "annat.md").write_text("# Upphandling\n\nDirektupphandlingsgränsen är 700 000 kronor.\n",
                                     encoding="utf-8")
    record = _ask(corpus, tmp_path / "index", "Var driver föreningen Vägen ut ett kafé?")
    assert not record["abstained"], record
    citation = record["citations"][0]
    assert citation["source"] == "vagen.md"
    assert normalize_ws(citation["quote"]) == KAFE
    assert verify(Citation(corpus_dir=str(corpus), **citation)) is None


def test_a_legacy_cp1252_file_is_cited_verbatim_too(tmp_path, embedder):
    """A file with no UTF-8 sequence at all is cp1252 (older Windows files), for indexing and quote checks."""
    corpus = tmp_path / "korpus"
    corpus.mkdir()
    (corpus / "gammal.txt").write_bytes((KAFE + "\n").encode("cp1252"))
    (corpus / "annat.md").write_text("# Upphandling\n\nDirektupphandlingsgränsen är 700 000 kronor.\n",
                                     encoding="utf-8")
    record = _ask(corpus, tmp_path / "index", "Var driver föreningen Vägen ut ett kafé?")
    assert not record["abstained"], record
    citation = record["citations"][0]
    assert (citation["source"], normalize_ws(citation["quote"])) == ("gammal.txt", KAFE)
    assert verify(Citation(corpus_dir=str(corpus), **citation)) is None


def test_decoding_rules():
    from assistant.loaders import decode_text

    assert decode_text("Kommunen köper tjänster.".encode("cp1252")) == "Kommunen köper tjänster."
    assert decode_text(b"\xef\xbb\xbfmed BOM \xc3\xa5") == "med BOM å"
    assert decode_text(b"utf-8 \xc3\xb6 och \xff") == "utf-8 ö och \ufffd"
    assert decode_text(b"ingen cp1252 \x81 \x8d") == "ingen cp1252 \ufffd \ufffd"  # undefined in cp1252
    assert decode_text("UTF-16 från Anteckningar: åäö".encode("utf-16")) == "UTF-16 från Anteckningar: åäö"
