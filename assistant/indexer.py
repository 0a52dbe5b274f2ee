"""Build or update the index incrementally, and open the current one for serving.

Layout of the index folder::

    index/
      CURRENT              name of the generation being served (replaced atomically, last)
      gen-<time>-<pid>/    manifest.json (files, hashes, chunk ids, model), the serving summaries
                           (assistant.summaries) + the embedded Chroma store
      .lock                held while a build runs

With ``ASSISTANT_CHROMA_URL`` a generation's vectors are the server collection ``samverkan-<generation>``
instead of a store in its folder (see assistant.store). CURRENT and the manifests stay in the index folder
even then: every app process must agree on which generation is served, and a rename on one shared path is
the one switch all of them see at once; the server only ever holds complete collections next to it. The
BM25 index, the id maps, the vector statistics of fusion and a copy of the chunk vectors are
files in the generation folder in both deployments (assistant.summaries), so a serving process never reads
every chunk and scores without fetching vectors from Chroma.

An update writes a new generation: vectors of unchanged files are copied from the served one's vectors.npy
(never re-embedded, nor fetched from Chroma unless a generation predates that file), new and changed files
are embedded, deleted files are left out. Only when the new generation is complete does CURRENT move to it,
so an interrupted build leaves the old index serving.
Copying is O(index size), which is fine for handbook-sized corpora and buys that guarantee cheaply.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant import loaders, summaries
from assistant.chunking import CHUNKER_VERSION, chunk_document
from assistant.embeddings import TextEmbedder
from assistant.settings import Settings
from assistant.store import ChromaServerError, ChunkStore, NotFoundError, drop_generation, server_client
from assistant.store import NoIndexError as NoIndexError  # defined beside the store's CollectionMissingError
from assistant.types import Chunk, IndexReport, SkippedFile, chunk_count, document_key

MANIFEST = "manifest.json"
# 2: chunks only (no per-sentence vectors: the relevance model reads the sentences)
# 3: serving summaries beside the manifest (assistant.summaries): saved BM25, id maps, vector mean/covariance
FORMAT = 3

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class IndexBuildError(Exception):
    """A build that cannot run or produced nothing; the message is for the user (Swedish)."""


@dataclass
class Generation:
    path: Path
    manifest: dict

    @property
    def files(self) -> dict[str, dict]:
        return self.manifest.get("files", {})


def build_config(settings: Settings, embedder: TextEmbedder) -> dict:
    """What must be equal for an existing index to be reused; anything else means a full rebuild."""
    config = {
        "format": FORMAT,
        "model": embedder.fingerprint,
        "chunker": CHUNKER_VERSION,
        "chunk_tokens": settings.chunk_tokens,
    }
    if settings.chroma_url:  # only then, so embedded indexes built before the setting existed stay valid
        config["chroma"] = "server"  # the server is not in it: moving it keeps the index
    return config


def current_name(index_dir: Path) -> str | None:
    """Name of the served generation: one small read, cheap enough to check on every request."""
    try:
        return (index_dir / "CURRENT").read_text().strip() or None
    except OSError:
        return None


def current_generation(index_dir: Path) -> Generation | None:
    pointer = index_dir / "CURRENT"
    try:
        name = pointer.read_text().strip()
        path = index_dir / name
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return Generation(path, manifest)


@contextmanager
def _locked(index_dir: Path) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexBuildError("En annan indexering pågår redan i samma indexmapp.") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_corpora(corpus_dirs: tuple[Path, ...]) -> loaders.Discovery:
    """Every corpus folder's files, and what discovery refused (symlinks, unusable names) with reasons."""
    found = loaders.Discovery()
    for corpus in corpus_dirs:
        if not corpus.is_dir():
            raise IndexBuildError(f"Korpusmappen finns inte: {corpus}")
        scanned = loaders.scan(corpus.resolve())
        if not scanned.files:
            raise IndexBuildError(
                f"Korpusmappen {corpus} innehåller inga dokument som kan indexeras "
                f"({', '.join(sorted(loaders.SUPPORTED))})."
            )
        found.files.extend(scanned.files)
        found.skipped.extend(scanned.skipped)
    return found


def check_server(settings: Settings) -> None:
    """With ``ASSISTANT_CHROMA_URL``: fail now, as a build error naming the setting, when the server cannot be
    used, so a caller can ask before it loads a model for nothing (the CLI's ``index`` does)."""
    if settings.chroma_url:
        try:
            server_client(settings)
        except ChromaServerError as exc:
            raise IndexBuildError(str(exc)) from exc


def build_index(settings: Settings, embedder: TextEmbedder, progress: Progress | None = None) -> IndexReport:
    try:
        return _build_index(settings, embedder, progress)
    except ChromaServerError as exc:  # its message names the setting to fix; a build error, not a crash
        raise IndexBuildError(str(exc)) from exc


def _build_index(settings: Settings, embedder: TextEmbedder, progress: Progress | None) -> IndexReport:
    started = time.perf_counter()
    progress = progress or (lambda stage, done, total: None)
    discovery = _check_corpora(settings.corpus_dirs)
    files = discovery.files
    limits = loaders.Limits.from_settings(settings)
    index_dir = settings.index_dir
    with _locked(index_dir):
        report = IndexReport()
        # a refused symlink or name is not "seen": an earlier index's entry for it is removed, not kept
        report.skipped.extend(discovery.skipped)
        config = build_config(settings, embedder)
        old = current_generation(index_dir)
        old_store = _open_store(old, settings) if old is not None and old.manifest.get("config") == config else None
        if old_store is None and settings.chroma_url:
            server_client(settings)  # a server that cannot be used fails now, not after embedding the corpus
        if old is not None and old_store is None:  # other settings, or its vectors are gone (another server)
            report.rebuilt = True
            old = None
        old_files = old.files if old else {}

        keep: dict[str, dict] = {}  # key -> manifest entry reused as is
        new_chunks: list[Chunk] = []
        new_entries: dict[str, dict] = {}
        seen: set[str] = set()
        for i, file in enumerate(files):
            progress("läser", i, len(files))
            key = document_key(file.corpus_dir, file.source)
            seen.add(key)
            previous = old_files.get(key)
            try:
                data = loaders.read_bytes(file, limits)  # size checked before reading
                digest = hashlib.sha256(data).hexdigest()
                if previous and previous["sha256"] == digest:
                    keep[key] = _counted(previous)
                    report.unchanged.append(file.source)
                    continue
                doc = loaders.load(file, limits, data)
                chunks = chunk_document(doc, embedder.count_tokens, settings.chunk_tokens, embedder.max_tokens,
                                        settings.max_chunks)
            except loaders.LoadError as exc:
                reason = str(exc) + ("; den tidigare versionen finns kvar i indexet" if previous else "")
                report.skipped.append(SkippedFile(file.source, reason))
                if previous:
                    keep[key] = _counted(previous)  # a broken or over-limit update must not lose the good version
                continue
            (report.updated if previous else report.added).append(file.source)
            new_chunks.extend(chunks)
            new_entries[key] = {
                "corpus_dir": str(file.corpus_dir), "source": file.source, "sha256": doc.sha256,
                "title": doc.title, "metadata": doc.metadata, "chunks": len(chunks),
            }
        progress("läser", len(files), len(files))
        report.removed = sorted(v["source"] for k, v in old_files.items() if k not in seen)

        changed = report.rebuilt or old is None or new_entries or report.removed
        if not changed:
            report.chunks = sum(chunk_count(v) for v in keep.values())
            report.seconds = time.perf_counter() - started
            return report
        all_files = {**keep, **new_entries}
        total = sum(chunk_count(v) for v in all_files.values())
        if total == 0:
            raise IndexBuildError("Inget dokument kunde indexeras; det befintliga indexet (om något) används.")

        vectors = _embed(embedder, [c.embedding_text() for c in new_chunks], "bäddar in", progress)
        gen_path = index_dir / f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.time_ns() % 10**6}"
        gen_path.mkdir()  # first, so a build killed later leaves a folder the next prune finds
        try:
            store = ChunkStore(gen_path, embedder, settings, create=True)
            kept_chunks, kept_vectors = [], np.zeros((0, embedder.dimension), np.float32)
            if old_store is not None and keep:
                kept_chunks, kept_vectors = _copy_kept(old_store, old.path, keep, store, progress,
                                                       embedder.dimension)
            if new_chunks:
                store.add(new_chunks, vectors)
            progress("sammanfattar", 0, 1)
            everything = kept_chunks + new_chunks
            order = sorted(range(len(everything)), key=lambda i: summaries.chunk_order(everything[i]))
            summaries.write(gen_path, [everything[i] for i in order], np.concatenate([kept_vectors, vectors])[order])
            progress("sammanfattar", 1, 1)
            manifest = {"config": config, "files": all_files, "created": time.time(),
                        "chunks": store.count()}
            (gen_path / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
            report.chunks = store.count()
            del store
        except BaseException:
            drop_generation(gen_path, settings)
            raise
        _activate(settings, gen_path)
        report.chunks_embedded = len(new_chunks)
        report.seconds = time.perf_counter() - started
        return report


def _embed(embedder: TextEmbedder, texts: list[str], stage: str, progress: Progress) -> np.ndarray:
    parts = []
    step = max(embedder.batch_size * 4, 64)
    for start in range(0, len(texts), step):
        progress(stage, start, len(texts))
        parts.append(embedder.embed_passages(texts[start : start + step]))
    progress(stage, len(texts), len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def _open_store(generation: Generation, settings: Settings) -> ChunkStore | None:
    try:
        return ChunkStore(generation.path, None, settings)
    except NotFoundError:
        return None


def _copy_kept(source: ChunkStore, source_path: Path, keep: dict[str, dict], store: ChunkStore,
               progress: Progress, dimension: int) -> tuple[list[Chunk], np.ndarray]:
    # the kept documents' chunks, by the document fields every chunk carries (the manifest holds no ids)
    chunks = [c for c in source.chunks() if document_key(c.corpus_dir, c.source) in keep]
    progress("kopierar", 0, len(chunks))
    ids = [c.id for c in chunks]
    # their vectors from the served generation's vectors.npy: from a Chroma server they would be ~8 KB of
    # JSON each. Its rows are what that generation's Chroma was given, so the new collection stores exactly
    # what the served one does; Chroma's own copies come back re-normalised (±1 ulp), and each update that
    # fed those back drifted them by another rounding
    vectors = summaries.stored_vectors(source_path, ids) if chunks else np.zeros((0, dimension), np.float32)
    if vectors is None:  # a generation written before vectors.npy (or lacking an id): from Chroma, as before
        by_id = source.vectors(ids)
        vectors = np.stack([by_id[i] for i in ids])
    if chunks:
        store.add(chunks, vectors)
    progress("kopierar", len(chunks), len(chunks))
    return chunks, vectors


def _counted(entry: dict) -> dict:
    """A kept manifest entry with its chunk count, also when an older manifest listed every chunk id."""
    return {**{k: v for k, v in entry.items() if k != "chunk_ids"}, "chunks": chunk_count(entry)}


def _activate(settings: Settings, gen_path: Path) -> None:
    """Point CURRENT at the new generation (atomic rename), then drop all but it and the previous one
    (a process still serving the previous one keeps working until its next request sees CURRENT)."""
    index_dir = settings.index_dir
    previous = current_generation(index_dir)
    tmp = index_dir / "CURRENT.tmp"
    tmp.write_text(gen_path.name)
    os.replace(tmp, index_dir / "CURRENT")
    keep = {gen_path.name} | ({previous.path.name} if previous else set())
    for child in index_dir.glob("gen-*"):
        if child.name not in keep:
            drop_generation(child, settings)
