"""Corpus administration behind the admin tab: upload, list, remove documents and check the password.

Kept free of Gradio so it can be tested directly; the tab in ui.app only wires these to buttons.
"""

from __future__ import annotations

import hmac
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from assistant import pipeline
from assistant.settings import Settings
from assistant.types import Document

UPLOAD_TYPES = (".pdf", ".docx", ".md", ".txt", ".html", ".htm")
_UNSAFE = re.compile(r"[^\w\-. ()]+")  # \w is Unicode: å, ä and ö stay


class AdminError(Exception):
    """An action refused; the message (Swedish) is shown to the admin."""


def password_ok(settings: Settings, given: str | None) -> bool:
    if not settings.admin_password or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), settings.admin_password.encode("utf-8"))


def safe_name(name: str) -> str:
    """A plain file name for an upload: no folders, no hidden files, only the allowed formats."""
    base = Path(name.replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip(" .")
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    if suffix not in UPLOAD_TYPES:
        raise AdminError(f"{name}: formatet stöds inte (tillåtna: {', '.join(UPLOAD_TYPES)}).")
    if not stem or pipeline.ignored_name(base):
        raise AdminError(f"{name}: ogiltigt filnamn.")
    return f"{stem}{suffix}"


def save_uploads(settings: Settings, paths: list[str | Path], upload_dir: str | Path) -> list[str]:
    """Copy uploaded files into the first corpus folder; returns a line per file for the admin.

    Only files inside ``upload_dir`` (Gradio's upload cache: bytes a browser sent) are taken, never any
    other path on the server. A target name that is a symbolic link in the corpus folder is refused,
    and files are written beside the target and renamed into place, so nothing is written through a link."""
    target = settings.corpus_dirs[0]
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for path in paths:
        path = Path(path)
        try:
            name = safe_name(path.name)
        except AdminError as exc:
            lines.append(f"Inte sparad: {exc}")
            continue
        if not within(path, upload_dir) or not path.is_file():
            lines.append(f"Inte sparad: {name}: filen kom inte från en uppladdning.")
            continue
        dest = target / name
        if dest.is_symlink():
            lines.append(f"Inte sparad: {name}: namnet är en symbolisk länk i {target.name}/; ta bort länken först.")
            continue
        existed = os.path.lexists(dest)
        _write_beside(path, dest)
        lines.append(f"{name} {'ersatte den tidigare versionen' if existed else 'sparades'} i {target.name}/")
    return lines


def within(path: str | Path, folder: str | Path) -> bool:
    """True when ``path``, with every symbolic link resolved, lies inside ``folder``."""
    try:
        return Path(path).resolve(strict=True).is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError):
        return False


def _write_beside(source: Path, dest: Path) -> None:
    """A new file in dest's folder (O_EXCL: never an existing file or link), renamed over dest: the
    rename replaces a link itself instead of writing to where it points."""
    fd, staging = tempfile.mkstemp(dir=dest.parent, prefix=".upload-", suffix=dest.suffix)
    try:
        with os.fdopen(fd, "wb") as out, os.fdopen(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as data:
            shutil.copyfileobj(data, out)
        os.chmod(staging, 0o644)
        os.replace(staging, dest)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class CorpusDocument:
    number: int  # position of its folder in settings.corpus_dirs
    source: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.number}/{self.source}"

    def label(self, settings: Settings) -> str:
        return f"{self.source} ({settings.corpus_dirs[self.number].name}/)"


def corpus_documents(settings: Settings, scanned: pipeline.CorpusScan | None = None) -> list[CorpusDocument]:
    """Every indexable file in the corpus folders, indexed or not (skipped files can be removed too).
    ``scanned``: a ``pipeline.scan_corpus`` of now, when the caller has one."""
    scanned = pipeline.scan_corpus(settings) if scanned is None else scanned
    return [CorpusDocument(number, f.source, f.path) for number, found in scanned.items() for f in found.files]


def remove_document(settings: Settings, key: str) -> CorpusDocument:
    """Delete a corpus file chosen by its key ("<folder number>/<source>"); the caller re-indexes."""
    documents = corpus_documents(settings)
    chosen = next((d for d in documents if d.key == key), None)  # only keys we listed: no arbitrary paths
    if chosen is None:
        raise AdminError("Dokumentet finns inte i någon korpusmapp.")
    if sum(1 for d in documents if d.number == chosen.number) <= 1:
        raise AdminError("Det sista dokumentet i en korpusmapp kan inte tas bort: indexet skulle bli tomt.")
    chosen.path.unlink()
    return chosen


def unindexed(settings: Settings, documents: list[Document],
              scanned: pipeline.CorpusScan | None = None) -> list[tuple[str, str]]:
    """(file, reason) for every corpus file the served index lacks (pipeline.unindexed), for the table."""
    return [(s.source, s.reason) for s in pipeline.unindexed(settings, documents, scanned)]
