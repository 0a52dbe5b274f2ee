"""The feedback store: real SQLite files in tmp_path."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from ui.feedback import COLUMNS, MAX_COMMENT, FeedbackEntry, FeedbackStore, export_csv

SOURCES = [{"n": 1, "source": "regler/reserverade-kontrakt.md", "title": "Reserverade kontrakt", "section": "Vad lagen",
            "page": None, "quote": "Enligt 4 kap. 18 § LOU får kommunen reservera en upphandling."}]


def entry(rating: str = "up", **changes) -> FeedbackEntry:
    values = {"rating": rating, "question": "Får kommunen reservera en upphandling?",
              "answer": "Enligt 4 kap. 18 § LOU får kommunen reservera en upphandling. [1]",
              "sources": SOURCES, "mode": "extractive", **changes}
    return FeedbackEntry(**values)


def test_add_stores_question_answer_sources_mode_and_time(tmp_path):
    db = tmp_path / "sub" / "feedback.sqlite3"  # the folder is created on first use
    store = FeedbackStore(db)
    when = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
    first = store.add(entry(comment="  Bra källa!  "), now=when)
    second = store.add(entry("down", abstained=True, sources=[]))
    assert (first, second) == (1, 2)

    rows = store.all()
    assert rows[0] == {
        "id": 1, "created_at": "2026-11-28T10:30:00+00:00", "rating": "up", "comment": "Bra källa!",
        "question": "Får kommunen reservera en upphandling?",
        "answer": "Enligt 4 kap. 18 § LOU får kommunen reservera en upphandling. [1]",
        "sources": SOURCES, "mode": "extractive", "abstained": False,
    }
    assert rows[1]["rating"] == "down" and rows[1]["abstained"] is True and rows[1]["sources"] == []
    # the file is plain SQLite that other tools can read
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (2,)


def test_no_personal_data_columns(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.add(entry())
    with sqlite3.connect(store.path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(feedback)")]
    assert tuple(columns) == COLUMNS
    assert not {"ip", "user_agent", "session", "session_id", "session_hash", "username"} & set(columns)


def test_update_replaces_rating_and_comment_without_a_new_row(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    entry_id = store.add(entry("up"))
    store.update(entry_id, entry("down", comment="Fel paragraf"))
    rows = store.all()
    assert len(rows) == 1
    assert (rows[0]["rating"], rows[0]["comment"]) == ("down", "Fel paragraf")


def test_rejects_unknown_rating_and_bounds_comment(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    with pytest.raises(ValueError):
        store.add(entry("meh"))
    store.add(entry(comment="x" * (MAX_COMMENT + 500)))
    assert len(store.all()[0]["comment"]) == MAX_COMMENT


def test_csv_export_for_editors(tmp_path):
    db = tmp_path / "f.sqlite3"
    store = FeedbackStore(db)
    store.add(entry("up", comment='Tydligt, "bra"; tack'))
    store.add(entry("down", question="Hur bakar man surdegsbröd?", answer="Underlaget svarar inte på det.",
                    abstained=True, sources=[{"n": 1, "source": "natverket.pdf", "title": "Nätverket",
                                              "section": "Inledning", "page": 1, "nearest": True}]))
    out = export_csv(db, tmp_path / "export" / "omdomen.csv")  # the function editors call from Python

    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads å, ä, ö right
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["omdöme"] for r in rows] == ["bra", "dåligt"]
    assert rows[0]["kommentar"] == 'Tydligt, "bra"; tack'
    assert rows[0]["källor"] == "[1] Reserverade kontrakt – Vad lagen (regler/reserverade-kontrakt.md)"
    assert rows[1]["källor"] == "[1] Nätverket – Inledning, s. 1 (natverket.pdf)"
    assert rows[1]["avböjt"] == "ja" and rows[1]["läge"] == "extractive"
    assert '"source": "natverket.pdf"' in rows[1]["källor (JSON)"]


def test_concurrent_writers_all_land(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")

    def write(i: int) -> None:
        for j in range(10):
            store.add(entry(comment=f"{i}-{j}"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    comments = {row["comment"] for row in store.all()}
    assert len(comments) == 60


def test_empty_export_has_only_the_header(tmp_path):
    out = FeedbackStore(tmp_path / "f.sqlite3").export_csv(tmp_path / "tom.csv")
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 1 and lines[0].startswith("id,tid (UTC),omdöme")
