"""assistant.indexer on real Chroma stores in tmp_path: incremental updates, rebuilds, interrupted builds,
broken and empty files, generations and the lock. The tests taking ``deployment`` run twice: on the embedded
store and on a real Chroma server (one collection per generation)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from collections import Counter

import numpy as np
import pytest

from assistant.embeddings import Embedder
from assistant.embeddings.fake import FAKE_MODEL
from assistant.indexer import IndexBuildError, build_index, current_generation
from assistant.pipeline import Assistant
from assistant.retrieval import IndexMismatchError, LoadedIndex
from assistant.settings import DEFAULT_MODEL
from assistant.store import SERVER_PREFIX, ChunkStore, server_client
from assistant.summaries import FILES, VECTORS, Summaries
from assistant.text import normalize_ws
from assistant.types import document_key

SERVED_FILES = sorted(["manifest.json", *FILES])  # a server generation's folder: no Chroma files

NEW_DOC = """\
# Ny vägledning

## Lokala överenskommelser

En lokal överenskommelse mellan kommunen och civilsamhället beskriver hur parterna ska samverka.

## Uppföljning

Överenskommelsen följs upp av ett gemensamt samrådsorgan varje höst.
"""


def _store(settings, embedder) -> ChunkStore:
    gen = current_generation(settings.index_dir)
    assert gen is not None
    return ChunkStore(gen.path, embedder, settings)


def _generations(settings) -> set[str]:
    return {p.name for p in settings.index_dir.glob("gen-*")}


def _current(settings) -> str:
    return (settings.index_dir / "CURRENT").read_text().strip()


def _server_collections(settings) -> set[str]:
    """This server's collections of the project (any test's), or an empty set for the embedded store."""
    if not settings.chroma_url:
        return set()
    return {c.name for c in server_client(settings).list_collections() if c.name.startswith(SERVER_PREFIX)}


def _by_source(chunks) -> Counter:
    return Counter(c.source for c in chunks)


def _assert_consistent(settings, embedder):
    """Manifest, Chroma and the served chunk ids agree: no duplicates, nothing missing."""
    gen = current_generation(settings.index_dir)
    store = ChunkStore(gen.path, embedder, settings)
    chunks = store.chunks()
    ids = [c.id for c in chunks]
    assert len(ids) == len(set(ids))
    assert len({(c.corpus_dir, c.source, c.position) for c in chunks}) == len(chunks)
    # the manifest counts each document's chunks; the ids are in the summaries, in the same order as chunks()
    assert all("chunk_ids" not in entry for entry in gen.files.values())
    counts = {key: entry["chunks"] for key, entry in gen.files.items() if entry["chunks"]}
    assert counts == Counter(document_key(c.corpus_dir, c.source) for c in chunks)
    summaries = Summaries(gen.path)
    assert summaries.ids(range(len(chunks))) == ids
    # the vector rows are Chroma's vectors of those ids (new and copied documents alike), in that order
    by_id = store.vectors(ids)
    rows = summaries.rows(list(range(len(ids))))
    assert rows.dtype == np.float32 and rows.shape == (len(ids), embedder.dimension)
    assert np.allclose(rows, np.stack([by_id[i] for i in ids]), rtol=0, atol=1e-6)
    assert gen.manifest["chunks"] == len(chunks)
    return chunks


def test_first_build_indexes_every_format(corpus, settings_for, embedder, deployment):
    settings = settings_for(corpus.dir, **deployment)
    report = build_index(settings, embedder)
    sources = sorted(p.relative_to(corpus.dir).as_posix() for p in corpus.files)
    assert sorted(report.added) == sources
    assert report.updated == report.unchanged == report.removed == report.skipped == []
    assert not report.rebuilt
    chunks = _assert_consistent(settings, embedder)
    assert report.chunks == report.chunks_embedded == len(chunks)
    assert set(_by_source(chunks)) == set(sources)
    assert _current(settings) in _generations(settings)
    if settings.chroma_url:  # the vectors went to the server: the folder holds the manifest and the summaries
        gen = current_generation(settings.index_dir)
        assert sorted(p.name for p in gen.path.iterdir()) == SERVED_FILES
        assert SERVER_PREFIX + gen.path.name in _server_collections(settings)

    pdf = [c for c in chunks if c.source == "handbok.pdf"]
    assert {c.page for c in pdf} == {1, 2, 3}
    assert all(c.page is None for c in chunks if c.source != "handbok.pdf")
    for number, (outline, text) in enumerate(corpus.pdf_pages, start=1):
        page = [c for c in pdf if c.page == number]
        assert {c.section for c in page} == {" > ".join(outline)}
        assert normalize_ws(text) == normalize_ws(" ".join(c.text for c in page))
    md = [c for c in chunks if c.source == "direktupphandling.md"]
    assert all(c.title == "Direktupphandling för kommuner" for c in md)
    assert all(c.metadata["valid_as_of"] == "2026-11-01" and c.metadata["type"] == "regelverk" for c in md)
    assert {c.section for c in md} >= {"Gränsen för direktupphandling",
                                       "Gränsen för direktupphandling > Dokumentation"}
    docx = [c for c in chunks if c.source == "riktlinjer.docx"]
    assert {c.section for c in docx} == {"Samverkan", "Samverkan > Regionala nätverk", "Uppföljning"}
    html = [c for c in chunks if c.source == "marknadsdialog.html"]
    assert {c.section for c in html} == {"Dialog före upphandling", "Dialog före upphandling > Tips",
                                         "Efter tilldelning"}


def test_unchanged_corpus_embeds_nothing_and_keeps_the_generation(tiny, settings_for, embedder, deployment):
    settings = settings_for(tiny, **deployment)
    first = build_index(settings, embedder)
    served, generations = _current(settings), _generations(settings)
    again = build_index(settings, embedder)
    assert again.chunks_embedded == 0
    assert again.added == again.updated == again.removed == again.skipped == []
    assert sorted(again.unchanged) == sorted(first.added)
    assert again.chunks == first.chunks
    assert _current(settings) == served and _generations(settings) == generations


def test_added_file_is_the_only_one_embedded(corpus, settings_for, embedder, deployment):
    settings = settings_for(corpus.dir, **deployment)
    first = build_index(settings, embedder)
    old_vectors = _store(settings, embedder).vectors([c.id for c in _store(settings, embedder).chunks()])
    (corpus.dir / "ny.md").write_text(NEW_DOC, encoding="utf-8")

    report = build_index(settings, embedder)
    assert report.added == ["ny.md"]
    assert sorted(report.unchanged) == sorted(first.added)
    chunks = _assert_consistent(settings, embedder)
    new = [c for c in chunks if c.source == "ny.md"]
    assert len(new) >= 2  # one per section
    assert report.chunks_embedded == len(new)
    assert report.chunks == len(chunks) == first.chunks + len(new)
    # the unchanged files' vectors were carried over (Chroma re-normalises: equal up to float rounding)
    copied = _store(settings, embedder).vectors(list(old_vectors))
    assert all(np.allclose(copied[i], old_vectors[i], atol=1e-6) for i in old_vectors)


def test_changed_file_replaces_its_old_chunks(corpus, settings_for, embedder, deployment):
    settings = settings_for(corpus.dir, **deployment)
    build_index(settings, embedder)
    before = _store(settings, embedder).chunks()
    old_md = [c for c in before if c.source == "direktupphandling.md"]
    text = corpus.markdown.read_text(encoding="utf-8")
    corpus.markdown.write_text(
        text.replace("700 000", "800 000") + "\n## Nytt avsnitt\n\nEtt helt nytt stycke om avtalsuppföljning.\n",
        encoding="utf-8",
    )

    report = build_index(settings, embedder)
    assert report.updated == ["direktupphandling.md"]
    assert report.added == report.removed == []
    chunks = _assert_consistent(settings, embedder)
    new_md = [c for c in chunks if c.source == "direktupphandling.md"]
    assert report.chunks_embedded == len(new_md)
    assert report.chunks == len(before) - len(old_md) + len(new_md)
    md_text = " ".join(c.text for c in new_md)
    assert "700 000" not in md_text and "800 000" in md_text and "avtalsuppföljning" in md_text
    assert Counter(c.text for c in new_md).most_common(1)[0][1] == 1  # no chunk twice
    assert {c.id for c in old_md if "700 000" in c.text}.isdisjoint({c.id for c in chunks})
    assert sorted(c.id for c in chunks if c.source != "direktupphandling.md") == sorted(
        c.id for c in before if c.source != "direktupphandling.md")


def test_deleted_file_chunks_are_gone(tiny, settings_for, embedder, deployment):
    settings = settings_for(tiny, **deployment)
    first = build_index(settings, embedder)
    gone = _by_source(_store(settings, embedder).chunks())["iop.txt"]
    (tiny / "iop.txt").unlink()

    report = build_index(settings, embedder)
    assert report.removed == ["iop.txt"]
    assert report.chunks_embedded == 0
    chunks = _assert_consistent(settings, embedder)
    assert "iop.txt" not in _by_source(chunks)
    assert report.chunks == first.chunks - gone == len(chunks)
    assert "iop.txt" not in {e["source"] for e in current_generation(settings.index_dir).files.values()}


def test_model_change_rebuilds_everything(tiny, settings_for, embedder, other_prefix_embedder):
    settings = settings_for(tiny)
    first = build_index(settings, embedder)
    report = build_index(settings.with_(query_prefix="fråga: ", passage_prefix=""), other_prefix_embedder)
    assert report.rebuilt
    assert report.chunks_embedded == report.chunks == first.chunks
    assert sorted(report.added) == sorted(first.added) and report.unchanged == []
    manifest = current_generation(settings.index_dir).manifest
    assert manifest["config"]["model"] == other_prefix_embedder.fingerprint
    # and back: the previous configuration is rebuilt too, never mixed
    back = build_index(settings, embedder)
    assert back.rebuilt and back.chunks_embedded == first.chunks


def test_chunk_size_change_rebuilds(tiny, settings_for, embedder):
    settings = settings_for(tiny)
    build_index(settings, embedder)
    report = build_index(settings.with_(chunk_tokens=64), embedder)
    assert report.rebuilt
    assert report.chunks_embedded == report.chunks
    _assert_consistent(settings, embedder)


class BuildInterruptedError(Exception):
    pass


@pytest.mark.parametrize(("stage", "exc"), [("bäddar in", BuildInterruptedError), ("kopierar", KeyboardInterrupt)])
def test_interrupted_build_keeps_the_old_index_serving(tiny, settings_for, embedder, deployment, stage, exc):
    settings = settings_for(tiny, **deployment)
    build_index(settings, embedder)
    served, generations, collections = _current(settings), _generations(settings), _server_collections(settings)
    old_ids = sorted(c.id for c in _store(settings, embedder).chunks())
    (tiny / "ny.md").write_text(NEW_DOC, encoding="utf-8")
    seen = []

    def progress(name, done, total):
        seen.append(name)
        if name == stage:
            raise exc(name)

    with pytest.raises(exc):
        build_index(settings, embedder, progress)
    assert stage in seen
    assert _current(settings) == served
    assert _generations(settings) == generations  # nothing half-built left behind
    assert _server_collections(settings) == collections  # not on the server either
    assert sorted(c.id for c in _store(settings, embedder).chunks()) == old_ids
    hits, _ = Assistant(settings, embedder).search("Hur stor andel av de anställda ska ha funktionsnedsättning?")
    assert hits[0].chunk.source == "reserverade.md"
    assert "ny.md" not in {h.chunk.source for h in hits}

    # the lock was released and the next build picks the new file up
    report = build_index(settings, embedder)
    assert report.added == ["ny.md"]
    assert _current(settings) != served


def test_broken_pdf_is_skipped_with_a_reason_and_the_rest_indexed(tiny, settings_for, embedder):
    good = sorted(p.name for p in tiny.iterdir())
    (tiny / "trasig.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00\xffgarbage" * 200)
    (tiny / "tom.md").write_bytes(b"")
    (tiny / "blank.txt").write_text("  \n\n  ", encoding="utf-8")
    settings = settings_for(tiny)
    report = build_index(settings, embedder)
    reasons = {s.source: s.reason for s in report.skipped}
    assert set(reasons) == {"trasig.pdf", "tom.md", "blank.txt"}
    assert "PDF" in reasons["trasig.pdf"]
    assert reasons["tom.md"] == reasons["blank.txt"] == "tom fil"
    assert sorted(report.added) == good
    chunks = _assert_consistent(settings, embedder)
    assert sorted(_by_source(chunks)) == good


def test_file_changed_to_broken_keeps_its_previous_version(tiny, corpus, settings_for, embedder):
    pdf = tiny / "handbok.pdf"
    shutil.copy(corpus.pdf, pdf)
    settings = settings_for(tiny)
    build_index(settings, embedder)
    pdf_ids = sorted(c.id for c in _store(settings, embedder).chunks() if c.source == "handbok.pdf")
    assert len(pdf_ids) == 3
    pdf.write_bytes(b"%PDF-1.7\n trasig efter uppdatering \x00\x01")

    report = build_index(settings, embedder)  # only the broken file changed
    [skipped] = report.skipped
    assert skipped.source == "handbok.pdf" and "tidigare versionen finns kvar" in skipped.reason
    assert sorted(c.id for c in _store(settings, embedder).chunks() if c.source == "handbok.pdf") == pdf_ids

    (tiny / "iop.txt").write_text("IOP bygger på att båda parter bidrar med resurser.\n", encoding="utf-8")
    report = build_index(settings, embedder)  # a new generation is written: the old PDF chunks come along
    assert report.updated == ["iop.txt"]
    assert [s.source for s in report.skipped] == ["handbok.pdf"]
    chunks = _assert_consistent(settings, embedder)
    assert sorted(c.id for c in chunks if c.source == "handbok.pdf") == pdf_ids
    hits, _ = Assistant(settings, embedder).search("Vilka leverantörer får en kommun reservera kontrakt för?")
    assert (hits[0].chunk.source, hits[0].chunk.page) == ("handbok.pdf", 2)

    # the manifest still holds the good version's hash, so a repaired file is picked up again
    entry = next(e for e in current_generation(settings.index_dir).files.values() if e["source"] == "handbok.pdf")
    assert entry["chunks"] > 0
    assert entry["sha256"] != hashlib.sha256(pdf.read_bytes()).hexdigest()
    shutil.copy(corpus.pdf, pdf)
    repaired = build_index(settings, embedder)
    assert repaired.unchanged.count("handbok.pdf") == 1 and repaired.skipped == []


def test_missing_or_empty_corpus_is_an_error(tmp_path, settings_for, embedder):
    with pytest.raises(IndexBuildError, match="finns inte"):
        build_index(settings_for(tmp_path / "saknas"), embedder)
    empty = tmp_path / "tom"
    empty.mkdir()
    (empty / "README.md").write_text("Bara en readme.", encoding="utf-8")
    (empty / "bild.png").write_bytes(b"\x89PNG")
    with pytest.raises(IndexBuildError, match="inga dokument"):
        build_index(settings_for(empty), embedder)
    assert current_generation(tmp_path / "index") is None


def test_corpus_of_only_unreadable_files_is_an_error(tmp_path, settings_for, embedder):
    folder = tmp_path / "trasigt"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(b"inte en pdf")
    (folder / "b.md").write_bytes(b"")
    with pytest.raises(IndexBuildError, match="Inget dokument kunde indexeras"):
        build_index(settings_for(folder), embedder)
    assert current_generation(tmp_path / "index") is None


def test_same_relative_path_in_two_corpus_folders_are_two_documents(tmp_path, settings_for, embedder):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, text in ((a, "Kommun A köper städtjänster."), (b, "Kommun B köper catering.")):
        folder.mkdir()
        (folder / "samma.md").write_text(text, encoding="utf-8")
    settings = settings_for(a, b)
    report = build_index(settings, embedder)
    assert report.added == ["samma.md", "samma.md"]
    chunks = _assert_consistent(settings, embedder)
    assert sorted(c.text for c in chunks) == ["Kommun A köper städtjänster.", "Kommun B köper catering."]
    assert {c.corpus_dir for c in chunks} == {str(a.resolve()), str(b.resolve())}

    (b / "samma.md").unlink()
    (b / "annan.md").write_text("Kommun B köper catering.", encoding="utf-8")
    report = build_index(settings, embedder)
    assert report.removed == ["samma.md"] and report.added == ["annan.md"] and report.unchanged == ["samma.md"]


def test_a_second_build_on_the_same_index_is_refused_while_one_runs(tiny, settings_for, embedder):
    settings = settings_for(tiny)
    settings.index_dir.mkdir(parents=True)
    with open(settings.index_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(IndexBuildError, match="pågår"):
            build_index(settings, embedder)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert build_index(settings, embedder).chunks > 0


def test_only_the_served_and_the_previous_generation_are_kept(tiny, settings_for, embedder, deployment):
    settings = settings_for(tiny, **deployment)
    served = []
    for i in range(3):
        (tiny / "logg.txt").write_text(f"Logg nummer {i} om samverkan.", encoding="utf-8")
        build_index(settings, embedder)
        served.append(_current(settings))
    assert len(set(served)) == 3
    assert _generations(settings) == set(served[-2:])
    if settings.chroma_url:  # the pruned generation's collection is gone from the server, the kept two remain
        mine = _server_collections(settings) & {SERVER_PREFIX + name for name in served}
        assert mine == {SERVER_PREFIX + name for name in served[-2:]}
    manifest = json.loads((settings.index_dir / served[-1] / "manifest.json").read_text())
    assert manifest["config"]["chunk_tokens"] == settings.chunk_tokens


def test_report_summary_and_json(tiny, settings_for, embedder):
    report = build_index(settings_for(tiny), embedder)
    data = report.to_json()
    assert set(data) == {"added", "updated", "unchanged", "removed", "skipped", "chunks", "chunks_embedded",
                         "seconds", "rebuilt"}
    json.dumps(data)
    assert f"{report.chunks} avsnitt" in report.summary()


# --- on the fast tier's stand-in embedder ----------------------------------------------------------


def test_an_index_of_the_stand_in_is_never_served_by_or_mixed_with_another_model(tiny, settings_for,
                                                                                 hashing_embedder):
    settings = settings_for(tiny)
    first = build_index(settings, hashing_embedder)
    config = current_generation(settings.index_dir).manifest["config"]
    assert config["model"] == hashing_embedder.fingerprint and FAKE_MODEL in config["model"]
    # the very same vectors under the real model's name: refused for serving, rebuilt when indexing
    impostor = Embedder(hashing_embedder.model, DEFAULT_MODEL, "query: ", "passage: ")
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(settings, impostor)
    again = build_index(settings, impostor)
    assert again.rebuilt and again.chunks_embedded == first.chunks
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(settings, hashing_embedder)


def test_one_update_adds_changes_and_removes_and_embeds_only_what_changed(corpus, settings_for,
                                                                           hashing_embedder):
    settings = settings_for(corpus.dir)
    first = build_index(settings, hashing_embedder)
    (corpus.dir / "ny.md").write_text(NEW_DOC, encoding="utf-8")
    corpus.markdown.write_text(corpus.markdown.read_text(encoding="utf-8").replace("700 000", "800 000"),
                               encoding="utf-8")
    corpus.html.unlink()

    report = build_index(settings, hashing_embedder)
    assert (report.added, report.updated, report.removed) == (["ny.md"], ["direktupphandling.md"],
                                                              ["marknadsdialog.html"])
    chunks = _assert_consistent(settings, hashing_embedder)
    by_source = _by_source(chunks)
    assert report.chunks_embedded == by_source["ny.md"] + by_source["direktupphandling.md"]
    assert report.chunks == len(chunks) < first.chunks + by_source["ny.md"]
    # the new generation serves the new text and no longer the old
    assistant = Assistant(settings, hashing_embedder)
    hits = assistant.retriever.search("Vem följer upp överenskommelsen varje höst?", k=3).hits
    assert hits[0].chunk.source == "ny.md"
    texts = " ".join(c.text for c in chunks)
    assert "800 000" in texts and "700 000" not in texts and "marknadsdialog.html" not in by_source


def test_a_manifest_listing_chunk_ids_is_read_and_rewritten_with_counts(corpus, settings_for, hashing_embedder):
    """Manifests written before the chunk counts listed every chunk id per document (several MB at 100k
    chunks): they are still served, and the next update copies their unchanged documents and counts them."""
    settings = settings_for(corpus.dir)
    first = build_index(settings, hashing_embedder)
    gen = current_generation(settings.index_dir)
    chunks = ChunkStore(gen.path, hashing_embedder, settings).chunks()
    manifest = json.loads((gen.path / "manifest.json").read_text())
    for key, entry in manifest["files"].items():  # back to the earlier layout
        del entry["chunks"]
        entry["chunk_ids"] = [c.id for c in chunks if document_key(c.corpus_dir, c.source) == key]
    (gen.path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    by_source = _by_source(chunks)
    documents = Assistant(settings, hashing_embedder).documents()
    assert {d.source: d.chunks for d in documents} == {d.source: by_source[d.source] for d in documents}

    changed = corpus.text.relative_to(corpus.dir).as_posix()
    corpus.text.write_text(corpus.text.read_text(encoding="utf-8") + "\nEn ny mening om tillsyn.\n",
                           encoding="utf-8")
    report = build_index(settings, hashing_embedder)
    assert report.updated == [changed] and not report.rebuilt
    now = _assert_consistent(settings, hashing_embedder)  # counts only in the new manifest
    assert report.chunks_embedded == _by_source(now)[changed]
    assert [c for c in now if c.source != changed] == [c for c in chunks if c.source != changed]  # copied
    assert report.chunks == len(now) == first.chunks + report.chunks_embedded - by_source[changed]


def _chroma_vectors(settings, embedder, ids) -> np.ndarray:
    by_id = _store(settings, embedder).vectors(ids)
    return np.stack([by_id[i] for i in ids])


def _fetches(monkeypatch) -> list[int]:
    """Count the calls of Chroma's vector fetch (the real method still runs): the number of ids asked."""
    calls = []
    real = ChunkStore.vectors

    def vectors(self, ids):
        calls.append(len(ids))
        return real(self, ids)

    monkeypatch.setattr(ChunkStore, "vectors", vectors)
    return calls


def test_an_update_copies_kept_vectors_from_the_vector_file_not_chroma(corpus, settings_for, hashing_embedder,
                                                                        deployment, monkeypatch):
    settings = settings_for(corpus.dir, **deployment)
    build_index(settings, hashing_embedder)
    old = current_generation(settings.index_dir).path
    changed = corpus.text.relative_to(corpus.dir).as_posix()
    kept = [c.id for c in _store(settings, hashing_embedder).chunks() if c.source != changed]
    old_chroma = _chroma_vectors(settings, hashing_embedder, kept)
    old_rows = Summaries(old).rows(Summaries(old).positions(kept))
    corpus.text.write_text(corpus.text.read_text(encoding="utf-8") + "\nEn ny mening om tillsyn.\n",
                           encoding="utf-8")

    fetches = _fetches(monkeypatch)
    report = build_index(settings, hashing_embedder)
    assert report.updated == [changed] and not report.rebuilt
    assert fetches == []  # no vector came from Chroma
    new = current_generation(settings.index_dir).path
    assert new != old
    # bit for bit: the file rows carried over, and Chroma, given the same input, holds what it held before
    # (its copies come back re-normalised: fed back, as the fetch did, they drift by a rounding)
    assert np.array_equal(Summaries(new).rows(Summaries(new).positions(kept)), old_rows)
    new_chroma = _chroma_vectors(settings, hashing_embedder, kept)
    assert new_chroma.dtype == np.float32 and np.array_equal(new_chroma, old_chroma)
    _assert_consistent(settings, hashing_embedder)


def test_an_update_over_a_generation_without_vector_file_fetches_from_chroma(corpus, settings_for,
                                                                              hashing_embedder, deployment,
                                                                              monkeypatch):
    settings = settings_for(corpus.dir, **deployment)
    build_index(settings, hashing_embedder)
    (current_generation(settings.index_dir).path / VECTORS).unlink()  # as written before the file existed
    changed = corpus.text.relative_to(corpus.dir).as_posix()
    kept = [c.id for c in _store(settings, hashing_embedder).chunks() if c.source != changed]
    old_chroma = _chroma_vectors(settings, hashing_embedder, kept)
    corpus.text.write_text(corpus.text.read_text(encoding="utf-8") + "\nEn ny mening om tillsyn.\n",
                           encoding="utf-8")

    fetches = _fetches(monkeypatch)
    report = build_index(settings, hashing_embedder)
    assert report.updated == [changed] and not report.rebuilt
    assert fetches == [len(kept)]  # the kept chunks' vectors, from Chroma
    now = _assert_consistent(settings, hashing_embedder)  # the new generation has its vector file again
    assert (current_generation(settings.index_dir).path / VECTORS).exists()
    assert report.chunks == len(now) and set(kept) < {c.id for c in now}
    assert np.allclose(_chroma_vectors(settings, hashing_embedder, kept), old_chroma, rtol=0, atol=1e-6)
