"""Encrypted PDFs made by pypdf itself (AES-256, the default of current PDF writers): one with an empty user
password (only editing is restricted) opens and is indexed; one with a real password is a clear skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.loaders import CorpusFile, LoadError, load

TEXT = "Kommunen och den sociala foretaget tecknade ett partnerskap om arbetstraning i parkerna."


def _encrypted_pdf(path: Path, write_pdf_file, user_password: str, algorithm: str = "AES-256") -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = write_pdf_file(path.with_name("klartext-" + path.name), [(("Avtal",), TEXT)], "Avtalet")
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password="agarens-losenord", algorithm=algorithm)
    with open(path, "wb") as f:
        writer.write(f)
    plain.unlink()
    assert PdfReader(path).is_encrypted
    return path


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128"])
def test_aes_pdf_with_an_empty_user_password_opens(tmp_path, write_pdf_file, algorithm):
    path = _encrypted_pdf(tmp_path / "skyddad.pdf", write_pdf_file, "", algorithm)
    doc = load(CorpusFile(tmp_path, path))
    assert doc.title == "Avtalet"
    assert [(b.text.replace("\n", " "), b.section, b.page) for b in doc.blocks] == [(TEXT, "Avtal", 1)]


def test_aes_pdf_with_a_password_is_skipped_with_a_clear_reason(tmp_path, write_pdf_file):
    path = _encrypted_pdf(tmp_path / "hemlig.pdf", write_pdf_file, "hemligt")
    with pytest.raises(LoadError, match=r"^PDF:en är lösenordsskyddad"):
        load(CorpusFile(tmp_path, path))


def test_index_takes_the_open_one_and_names_the_locked_one(tmp_path, write_pdf_file, embedder):
    corpus = tmp_path / "korpus"
    corpus.mkdir()
    _encrypted_pdf(corpus / "oppen.pdf", write_pdf_file, "")
    _encrypted_pdf(corpus / "last.pdf", write_pdf_file, "hemligt")
    result = CliRunner().invoke(cli, ["index", "--json", "--corpus", str(corpus), "--index", str(tmp_path / "i")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == ["oppen.pdf"]
    assert [(s["source"], s["reason"]) for s in report["skipped"]] == [
        ("last.pdf", "PDF:en är lösenordsskyddad (spara den utan lösenord och lägg in den igen)")]
