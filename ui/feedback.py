"""Thumbs up/down with an optional comment, kept in SQLite for the corpus editors.

Only what the editors need to improve the corpus is stored: the question, the answer, its sources, the
answer mode, the rating, the comment and the time. No IP address, user agent or session id. Personnummer,
e-mail addresses and phone numbers in what the visitor typed are masked before storing (ui.privacy); the
database (and SQLite's -wal/-shm files) is readable by its owner only; the CSV export cannot run formulas.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.types import location
from ui import privacy

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,          -- UTC, ISO 8601
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]', -- JSON list of cited (or, for a refusal, nearest) passages
    mode TEXT NOT NULL DEFAULT '',
    abstained INTEGER NOT NULL DEFAULT 0
)
"""
COLUMNS = ("id", "created_at", "rating", "comment", "question", "answer", "sources", "mode", "abstained")
MAX_COMMENT = 2000  # a comment is a note, not a document; also bounds what a visitor can store


@dataclass(frozen=True)
class FeedbackEntry:
    rating: str  # "up" or "down"
    question: str
    answer: str
    sources: list[dict[str, Any]]
    mode: str
    abstained: bool = False
    comment: str = ""


class FeedbackStore:
    """One SQLite file; a connection per call so Gradio's worker threads never share one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._init_lock = threading.Lock()
        self._ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            with self._init_lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    _private_file(self.path)  # before SQLite creates it with the umask's mode (often 0644)
                    with sqlite3.connect(self.path, timeout=10) as conn:
                        conn.execute("PRAGMA journal_mode=WAL")  # readers (export) do not block writers
                        conn.execute(SCHEMA)
                    # SQLite gives -wal and -shm the database's mode; an older database may still be wider
                    for suffix in ("-wal", "-shm"):
                        companion = self.path.with_name(self.path.name + suffix)
                        if companion.exists():
                            os.chmod(companion, 0o600)
                    self._ready = True
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:  # commits, or rolls back on error
                yield conn
        finally:
            conn.close()

    def add(self, entry: FeedbackEntry, now: datetime | None = None) -> int:
        if entry.rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {entry.rating!r}")
        created = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        # what the visitor typed, and the answer wherever it repeats that (an LLM may quote the question)
        typed = privacy.find_personal_data(entry.question) + privacy.find_personal_data(entry.comment)
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO feedback (created_at, rating, comment, question, answer, sources, mode, abstained)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (created, entry.rating, _comment(entry.comment), privacy.mask(entry.question),
                 privacy.mask(entry.answer, only=typed) if typed else entry.answer,
                 json.dumps(entry.sources, ensure_ascii=False), entry.mode, int(entry.abstained)),
            )
            return int(cur.lastrowid)

    def update(self, entry_id: int, entry: FeedbackEntry, now: datetime | None = None) -> None:
        """Replace the rating and comment of an entry (the visitor changed their mind about an answer)."""
        if entry.rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {entry.rating!r}")
        created = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        with self._connect() as conn:
            conn.execute("UPDATE feedback SET rating = ?, comment = ?, created_at = ? WHERE id = ?",
                         (entry.rating, _comment(entry.comment), created, entry_id))

    def all(self) -> list[dict[str, Any]]:
        """Every entry, oldest first, with ``sources`` decoded."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id").fetchall()
        out = []
        for row in rows:
            item = dict(zip(COLUMNS, row, strict=True))
            item["sources"] = json.loads(item["sources"])
            item["abstained"] = bool(item["abstained"])
            out.append(item)
        return out

    def to_csv(self) -> str:
        """CSV for the editors: one row per entry, sources as "title – section, s. N (file)" lines."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "tid (UTC)", "omdöme", "kommentar", "fråga", "svar", "källor", "källor (JSON)",
                         "läge", "avböjt"])
        for item in self.all():
            writer.writerow([_inert(cell) for cell in (
                item["id"], item["created_at"], "bra" if item["rating"] == "up" else "dåligt", item["comment"],
                item["question"], item["answer"], "\n".join(_source_line(s) for s in item["sources"]),
                json.dumps(item["sources"], ensure_ascii=False), item["mode"], "ja" if item["abstained"] else "nej",
            )])
        return buffer.getvalue()

    def export_csv(self, out: str | Path) -> Path:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        _private_file(out)  # the export holds what the database holds
        # utf-8-sig: Excel, which editors will open it in, then reads å, ä and ö correctly
        out.write_text(self.to_csv(), encoding="utf-8-sig", newline="")
        return out


def export_csv(db_path: str | Path, out: str | Path) -> Path:
    """Write the feedback in ``db_path`` as CSV to ``out``: ``export_csv(settings.feedback_path, "omdomen.csv")``."""
    return FeedbackStore(db_path).export_csv(out)


def _comment(comment: str) -> str:
    return privacy.mask(comment.strip()[:MAX_COMMENT])


def _private_file(path: Path) -> None:
    """Create ``path`` readable and writable by its owner only (0600), or narrow an existing one."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


# OWASP's CSV injection guidance: a cell starting with one of these is a formula (or becomes one) in Excel
# and LibreOffice; a leading apostrophe makes the spreadsheet show it as text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(_FORMULA_PREFIXES):
        return "'" + cell
    return cell


def _source_line(source: dict[str, Any]) -> str:
    n = f"[{source['n']}] " if source.get("n") else ""
    return n + location(source.get("title") or "", source.get("section") or "", source.get("page"),
                        source.get("source"))
