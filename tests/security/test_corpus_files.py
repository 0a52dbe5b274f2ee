"""Corpus discovery on real folders: symbolic links are never followed out of a corpus folder, and names
with control characters (or that are not UTF-8) are skipped with a reason, through the real CLI, real
index builds and the admin view's list of skipped files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.indexer import build_index, current_generation
from assistant.loaders import CorpusFile, LoadError, load
from assistant.settings import Settings
from assistant.store import ChunkStore
from assistant.types import Document
from ui.admin import corpus_documents, unindexed

CANARY = "Kanariefågeln xq7zv bor utanför korpusmappen."
SYMLINK_REASON = "symbolisk länk – följs inte (den kan peka utanför korpusmappen); lägg in själva filen"


def _corpus(root: Path) -> Path:
    corpus = root / "korpus"
    corpus.mkdir()
    (corpus / "samverkan.md").write_text(
        "# Samverkan\n\nKommunen samverkar med sociala företag genom idéburet offentligt partnerskap.\n",
        encoding="utf-8")
    return corpus


def _outside(root: Path) -> Path:
    """A folder next to the corpus with a document that must never be indexed."""
    outside = root / "utanfor"
    outside.mkdir()
    (outside / "hemlig.md").write_text(f"# Hemligt\n\n{CANARY}\n", encoding="utf-8")
    return outside


def _index(corpus: Path, index: Path) -> dict:
    result = CliRunner().invoke(cli, ["index", "--json", "--corpus", str(corpus), "--index", str(index)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _indexed_text(index: Path, embedder) -> tuple[set[str], str]:
    gen = current_generation(index)
    chunks = ChunkStore(gen.path, embedder).chunks()
    return {entry["source"] for entry in gen.files.values()}, "\n".join(c.text for c in chunks)


def test_symlink_to_etc_passwd_is_not_indexed(tmp_path, embedder):
    """The reproduction from the issue: `ln -s /etc/passwd corpus/passwd.txt; assistant index`."""
    corpus = _corpus(tmp_path)
    os.symlink("/etc/passwd", corpus / "passwd.txt")
    outside = _outside(tmp_path)
    os.symlink(outside, corpus / "lankad-mapp")  # a linked folder
    os.symlink(outside / "hemlig.md", corpus / "lank.md")  # a linked document
    report = _index(corpus, tmp_path / "index")

    skipped = {s["source"]: s["reason"] for s in report["skipped"]}
    assert skipped == {"passwd.txt": SYMLINK_REASON, "lankad-mapp": SYMLINK_REASON, "lank.md": SYMLINK_REASON}
    assert report["added"] == ["samverkan.md"]
    sources, text = _indexed_text(tmp_path / "index", embedder)
    assert sources == {"samverkan.md"}
    assert "root:" not in text and "xq7zv" not in text

    result = CliRunner().invoke(cli, ["search", "--json", "--mode", "lexical", "--corpus", str(corpus),
                                      "--index", str(tmp_path / "index"), "root bash xq7zv Kanariefågeln"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert all(h["source"] == "samverkan.md" for h in hits)

    # the plain-text report names them too
    plain = CliRunner().invoke(cli, ["index", "--corpus", str(corpus), "--index", str(tmp_path / "index")])
    assert f"Överhoppad: passwd.txt: {SYMLINK_REASON}" in plain.stdout


def test_an_indexed_file_replaced_by_a_symlink_leaves_the_index(tmp_path, embedder):
    """Unlike a file that breaks (which keeps its previous version), a symlink must not stay served."""
    corpus = _corpus(tmp_path)
    (corpus / "bilaga.md").write_text("# Bilaga\n\nBilagan beskriver uppföljningen av avtalet.\n",
                                      encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    assert sorted(build_index(settings, embedder).added) == ["bilaga.md", "samverkan.md"]

    (corpus / "bilaga.md").unlink()
    os.symlink(_outside(tmp_path) / "hemlig.md", corpus / "bilaga.md")
    report = build_index(settings, embedder)
    assert report.removed == ["bilaga.md"]
    assert [(s.source, s.reason) for s in report.skipped] == [("bilaga.md", SYMLINK_REASON)]
    sources, text = _indexed_text(settings.index_dir, embedder)
    assert sources == {"samverkan.md"} and "xq7zv" not in text


def test_load_refuses_a_symlink_that_appeared_after_discovery(tmp_path):
    corpus = _corpus(tmp_path)
    link = corpus / "ny.md"
    os.symlink(_outside(tmp_path) / "hemlig.md", link)
    with pytest.raises(LoadError, match="symbolisk länk"):
        load(CorpusFile(corpus, link))
    # a folder on the way that became a link is refused too, though the file itself is no link
    os.symlink(tmp_path / "utanfor", corpus / "mapp")
    with pytest.raises(LoadError, match="symbolisk länk"):
        load(CorpusFile(corpus, corpus / "mapp" / "hemlig.md"))


@pytest.mark.parametrize("name, shown, reason", [
    ("rad\nbrytning.md", "rad\\nbrytning.md", "styrtecken"),
    ("vagn\rretur.txt", "vagn\\rretur.txt", "styrtecken"),
    ("tab\tb.md", "tab\\tb.md", "styrtecken"),
    ("omvänd\u202etxt.md", "omvänd\\u202etxt.md", "styrtecken"),
    (os.fsdecode(b"latin1-\xe5r.md"), "latin1-\\xe5r.md", "inte giltig UTF-8"),
])
def test_names_with_control_characters_are_skipped_with_a_reason(tmp_path, embedder, name, shown, reason):
    corpus = _corpus(tmp_path)
    (corpus / name).write_text("# Titel\n\nEn mening om kommunens upphandling.\n", encoding="utf-8")
    report = _index(corpus, tmp_path / "index")
    assert report["added"] == ["samverkan.md"]
    [skipped] = report["skipped"]
    assert skipped["source"] == shown and reason in skipped["reason"]
    assert _indexed_text(tmp_path / "index", embedder)[0] == {"samverkan.md"}


def test_a_folder_with_a_control_character_is_skipped_whole(tmp_path, embedder):
    corpus = _corpus(tmp_path)
    (corpus / "ny\nmapp").mkdir()
    (corpus / "ny\nmapp" / "dok.md").write_text("# Dok\n\nText om avtal.\n", encoding="utf-8")
    report = _index(corpus, tmp_path / "index")
    assert [(s["source"], "styrtecken" in s["reason"]) for s in report["skipped"]] == [("ny\\nmapp/", True)]
    assert report["added"] == ["samverkan.md"]


def test_admin_view_lists_symlinks_and_bad_names_with_their_reason(tmp_path):
    corpus = _corpus(tmp_path)
    os.symlink("/etc/passwd", corpus / "passwd.txt")
    (corpus / "rad\nbrytning.md").write_text("# X\n\nText.\n", encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    indexed = [Document(str(corpus.resolve()), "samverkan.md", "Samverkan")]
    listed = dict(unindexed(settings, indexed))
    assert listed["passwd.txt"] == SYMLINK_REASON
    assert "styrtecken" in listed["rad\\nbrytning.md"]
    assert [d.source for d in corpus_documents(settings)] == ["samverkan.md"]  # nothing to remove through a link
