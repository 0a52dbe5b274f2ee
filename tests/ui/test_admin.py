"""Corpus administration: password check, uploads into the first corpus folder, removal, unindexed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.settings import Settings
from assistant.types import Document
from ui.admin import AdminError, corpus_documents, password_ok, remove_document, safe_name, save_uploads, unindexed


def test_password_ok():
    settings = Settings(admin_password="hemligt ord")
    assert password_ok(settings, "hemligt ord")
    assert not password_ok(settings, "hemligt")
    assert not password_ok(settings, "")
    assert not password_ok(settings, None)
    assert not password_ok(Settings(admin_password=""), "")  # no password set: nobody is admin


@pytest.mark.parametrize("name, expected", [
    ("Riktlinjer 2026.PDF", "Riktlinjer 2026.pdf"),
    ("../../etc/passwd.md", "passwd.md"),
    ("C:\\Users\\x\\Överenskommelse.docx", "Överenskommelse.docx"),
    ("rapport;rm -rf.txt", "rapport_rm -rf.txt"),
    ("sida.htm", "sida.htm"),
])
def test_safe_name(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["program.exe", "arkiv.zip", ".md", "README.md", "utan-filändelse"])
def test_safe_name_refuses(name):
    with pytest.raises(AdminError):
        safe_name(name)


def test_uploads_land_in_the_first_corpus_folder(tmp_path: Path):
    first, second, incoming = tmp_path / "first", tmp_path / "second", tmp_path / "incoming"
    second.mkdir()
    incoming.mkdir()
    (incoming / "ny.md").write_text("# Ny", encoding="utf-8")
    (incoming / "virus.exe").write_bytes(b"MZ")
    settings = Settings(corpus_dirs=(first, second))
    lines = save_uploads(settings, [incoming / "ny.md", incoming / "virus.exe"], incoming)
    assert (first / "ny.md").read_text(encoding="utf-8") == "# Ny"
    assert not (first / "virus.exe").exists() and not list(second.iterdir())
    assert lines[0] == "ny.md sparades i first/" and lines[1].startswith("Inte sparad: virus.exe")
    assert save_uploads(settings, [incoming / "ny.md"], incoming) == ["ny.md ersatte den tidigare versionen i first/"]
    assert sorted(p.name for p in first.iterdir()) == ["ny.md"]  # no staging file left behind


def test_uploads_only_from_the_upload_folder(tmp_path: Path):
    corpus, incoming = tmp_path / "corpus", tmp_path / "incoming"
    incoming.mkdir()
    secret = tmp_path / "hemlig.txt"
    secret.write_text("hemligt", encoding="utf-8")
    (incoming / "lank.txt").symlink_to(secret)  # a link inside the upload folder pointing out of it
    settings = Settings(corpus_dirs=(corpus,))
    lines = save_uploads(settings, [secret, incoming / "lank.txt", incoming / ".." / "hemlig.txt"], incoming)
    assert all(line.startswith("Inte sparad:") and "uppladdning" in line for line in lines)
    assert not list(corpus.iterdir())


def test_upload_never_writes_through_a_symlink(tmp_path: Path):
    corpus, incoming = tmp_path / "corpus", tmp_path / "incoming"
    corpus.mkdir()
    incoming.mkdir()
    outside = tmp_path / "utanfor.md"
    outside.write_text("orört", encoding="utf-8")
    (corpus / "lank.md").symlink_to(outside)
    (incoming / "lank.md").write_text("# Skrivet genom länken", encoding="utf-8")
    lines = save_uploads(Settings(corpus_dirs=(corpus,)), [incoming / "lank.md"], incoming)
    assert lines[0].startswith("Inte sparad: lank.md") and "symbolisk länk" in lines[0]
    assert outside.read_text(encoding="utf-8") == "orört" and (corpus / "lank.md").is_symlink()


def test_remove_document_only_by_listed_key(tmp_path: Path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("# A", encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text("B", encoding="utf-8")
    (tmp_path / "utanfor.md").write_text("# Utanför", encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,))
    assert [d.key for d in corpus_documents(settings)] == ["0/a.md", "0/sub/b.txt"]

    for key in ["0/../utanfor.md", "0/saknas.md", "1/a.md", "a.md"]:
        with pytest.raises(AdminError):
            remove_document(settings, key)
    assert (tmp_path / "utanfor.md").exists()

    assert remove_document(settings, "0/sub/b.txt").source == "sub/b.txt"
    assert not (corpus / "sub" / "b.txt").exists()
    with pytest.raises(AdminError, match="sista dokumentet"):
        remove_document(settings, "0/a.md")  # an empty corpus folder cannot be indexed
    assert (corpus / "a.md").exists()


def test_unindexed_files_with_reasons(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "indexerad.md").write_text("# I\n\nText.", encoding="utf-8")
    (corpus / "ny.md").write_text("# Ny\n\nText.", encoding="utf-8")
    (corpus / "tom.txt").write_text("", encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,))
    indexed = [Document(str(corpus.resolve()), "indexerad.md", "I")]
    assert unindexed(settings, indexed) == [("ny.md", "inte indexerad än – indexera om"), ("tom.txt", "tom fil")]
