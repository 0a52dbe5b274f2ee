"""The chat's event handlers in-process, over a real index of the small UI corpus (no browser), served by
the fast tier's stand-ins for the two models (assistant.embeddings.fake, tests/fakes.py)."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from fakes import WordOverlapScorer
from ui_corpus import write_ui_corpus

from assistant.embeddings.fake import fake_embedder
from assistant.pipeline import Assistant
from assistant.settings import Settings
from ui import app as app_module
from ui.app import SEARCHING, TEXT_ONLY, ChatApp, build, message_text, text_chatbot, text_messages
from ui.feedback import FeedbackStore
from ui.sources import ChatTurn


@pytest.fixture(autouse=True)
def no_stream_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pieces of an answer are what these tests check, not the pause between them that makes them read as
    streaming (0.03 s x 30 pieces, most of this module's time); the browser tests keep the real pause."""
    monkeypatch.setattr(app_module, "STREAM_PAUSE", 0.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """One index over the UI corpus; tests copy it when they change files."""
    root = tmp_path_factory.mktemp("app")
    corpus = write_ui_corpus(root / "corpus")
    settings = Settings(corpus_dirs=(corpus,), index_dir=root / "index", feedback_db=root / "feedback.sqlite3")
    assistant = Assistant(settings, fake_embedder(), WordOverlapScorer())
    assistant.index()
    return assistant


def test_server_query_path_imports_no_torch(served):
    """Issue 11: the chat app answers without torch, transformers or sentence-transformers (a new process:
    this test session has them loaded for the reference tests). On the real models: ``served``'s index."""
    import json
    import subprocess
    import sys

    s = served.settings
    code = (
        "import json, sys\n"
        "from assistant.pipeline import Assistant\n"
        "from assistant.settings import Settings\n"
        "from ui.app import ChatApp, create_app\n"
        f"settings = Settings.from_env(corpus_dirs=({str(s.corpus_dirs[0])!r},), index_dir={str(s.index_dir)!r})\n"
        "assistant = Assistant(settings)\n"
        "create_app(assistant)\n"
        "chat = ChatApp(assistant)\n"
        "message = {'role': 'user', 'content': [{'type': 'text', 'text': 'Vad är direktupphandlingsgränsen?'}]}\n"
        "steps = list(chat.answer([message], []))\n"
        "print(json.dumps([len(steps), sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'transformers', 'sentence_transformers'})]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    steps, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert steps > 1 and heavy == []


def user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}  # as Gradio 6 hands it back


def ask(chat: ChatApp, messages: list[dict], turns: list[ChatTurn], question: str):
    steps = list(chat.answer([*messages, user(question)], turns))
    messages, turns, panel, _status = steps[-1]
    return steps, messages, turns, panel


def test_answer_streams_then_shows_cited_sources(built):
    chat = ChatApp(built)
    steps, messages, turns, panel = ask(chat, [], [], "Vilka kommuner var med i utvecklingsnätverket?")

    assert steps[0][0][-1]["content"] == SEARCHING  # something shows at once
    texts = [s[0][-1]["content"] for s in steps[1:-1]]
    assert len(texts) >= 3, "the answer should arrive in pieces"
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))  # each piece extends the last
    final = messages[-1]["content"]
    assert "Örebro" in final and 'class="cite-ref" href="#kalla-1-1"' in final
    assert len(turns) == 1 and turns[0].citations[0].passage.source == "natverket.pdf"
    assert 'id="kalla-1-1"' in panel and 'href="/doc/0/natverket.pdf#page=2"' in panel and "<mark>" in panel


def test_follow_up_uses_the_conversation(built):
    chat = ChatApp(built)
    _, messages, turns, _ = ask(chat, [], [], "Vilka kommuner var med i utvecklingsnätverket?")
    _, messages, turns, panel = ask(chat, messages, turns, "och Malmö då?")
    assert len(turns) == 2 and not turns[1].abstained
    assert turns[1].citations[0].passage.source == "natverket.pdf"
    assert 'id="kalla-2-1"' in panel and 'id="kalla-1-1"' in panel
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def test_a_lost_chroma_server_is_a_notice_naming_it_then_answers_again(built, tmp_path: Path, own_chroma_server,
                                                                        caplog: pytest.LogCaptureFixture):
    settings = built.settings.with_(index_dir=tmp_path / "index", chroma_url=own_chroma_server.url)
    assistant = Assistant(settings, built.embedder, built.relevance)
    assistant.index()
    chat = ChatApp(assistant)
    question = "Vilka kommuner var med i utvecklingsnätverket?"
    assert not ask(chat, [], [], question)[2][0].abstained

    own_chroma_server.stop()
    with caplog.at_level(logging.WARNING, logger="ui.app"):
        steps = list(chat.answer([user(question)], []))
    messages, turns, _panel, status = steps[-1]
    said = (f"Chroma-servern på {own_chroma_server.url} svarar inte; kontrollera ASSISTANT_CHROMA_URL och att "
            "servern körs.")
    assert messages[-1]["content"] == f'<div class="stale-note" role="note">ℹ {said}</div>'
    assert turns == [] and "kan inte nås" in status
    assert [r.getMessage() for r in caplog.records] == [f"Indexets Chroma-server kan inte användas: {said}"]

    own_chroma_server.start()
    assert not ask(chat, [], [], question)[2][0].abstained


def test_refusal_is_a_refusal(built):
    chat = ChatApp(built)
    _, messages, turns, panel = ask(chat, [], [], "Hur bakar man surdegsbröd?")
    assert turns[0].abstained and turns[0].nearest
    assert messages[-1]["content"].startswith('<div class="refusal" role="note">')
    assert 'class="refusal"' in panel and 'id="kalla-1-1"' in panel  # nearest passages are offered


def test_stale_source_notice(built):
    chat = ChatApp(built)
    _, messages, turns, panel = ask(chat, [], [], "Vad är ett idéburet offentligt partnerskap?")
    assert turns[0].citations[0].passage.source == "vagledning/iop.md"
    assert 'class="stale-note"' in messages[-1]["content"]
    assert "kontrollerades senast 2020-03-01" in panel


def test_no_answer_without_a_new_question(built):
    chat = ChatApp(built)
    _, messages, turns, _ = ask(chat, [], [], "Vilka kommuner var med i utvecklingsnätverket?")
    again = list(chat.answer(messages, turns))  # e.g. an empty submit: nothing new to answer
    assert len(again) == 1 and again[0][0] == messages and again[0][1] == turns


def test_feedback_is_stored_and_updated(built):
    chat = ChatApp(built)
    turns, comment, status = chat.rate("up", "", [])
    assert turns == [] and "Ställ en fråga först" in status

    _, _, turns, _ = ask(chat, [], [], "Vilka kommuner var med i utvecklingsnätverket?")
    turns, comment, status = chat.rate("up", "Tydligt svar", turns)
    assert comment == "" and "Tack" in status
    turns, _, status = chat.rate("down", "Ändrade mig", turns)
    assert "uppdaterat" in status
    rows = [r for r in FeedbackStore(built.settings.feedback_path).all() if r["id"] == turns[-1].feedback_id]
    assert len(rows) == 1
    row = rows[0]
    assert (row["rating"], row["comment"], row["mode"]) == ("down", "Ändrade mig", "extractive")
    assert row["question"] == "Vilka kommuner var med i utvecklingsnätverket?"
    assert row["sources"][0]["source"] == "natverket.pdf" and row["sources"][0]["page"] == 2


def test_new_conversation_clears_everything():
    messages, turns, panel, _, comment, _ = ChatApp.new_conversation()
    assert messages == [] and turns == [] and comment == "" and "Här visas källorna" in panel


def test_message_text_reads_every_content_shape():
    assert message_text("Hej") == "Hej"
    assert message_text([{"type": "text", "text": "Hej"}, {"type": "file", "file": {}}]) == "Hej"
    assert message_text({"text": "Hej"}) == "Hej"
    assert message_text(None) == ""


def _tab_labels(demo: gr.Blocks) -> list[str]:
    return [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]


def test_admin_tab_only_with_a_password(built):
    assert "Administration" not in _tab_labels(build(built))
    with_admin = Assistant(built.settings.with_(admin_password="hemligt"), built.embedder, built.relevance)
    assert "Administration" in _tab_labels(build(with_admin))


def test_admin_actions(built, tmp_path: Path):
    corpus = tmp_path / "corpus"
    shutil.copytree(built.settings.corpus_dirs[0], corpus)
    settings = built.settings.with_(corpus_dirs=(corpus,), index_dir=tmp_path / "index", admin_password="hemligt")
    assistant = Assistant(settings, built.embedder, built.relevance)
    assistant.index()
    chat = ChatApp(assistant)

    with pytest.raises(gr.Error):
        chat.reindex(False)  # not logged in
    assert chat.login("fel")[0] is False
    ok, *_rest, summary = chat.login("hemligt")
    assert ok is True and summary.startswith("4 dokument i indexet")

    incoming = chat.upload_dir / f"test-{tmp_path.name}"  # uploads are taken from Gradio's upload folder only
    incoming.mkdir(parents=True, exist_ok=True)
    upload = incoming / "coompanion.txt"
    upload.write_text("Coompanion ger rådgivning till sociala företag i hela landet.", encoding="utf-8")
    empty = incoming / "tom.txt"
    empty.write_text("", encoding="utf-8")
    try:
        _files, rows, _choices, skipped, summary, status = chat.upload(True, [str(upload), str(empty)])
    finally:
        shutil.rmtree(incoming)
    assert ["coompanion.txt", "coompanion", "corpus"] in rows
    assert skipped == [["tom.txt", "tom fil"]] and "tillagda 1" in status

    with pytest.warns(UserWarning, match="Kryssa i rutan"):  # gr.Warning outside an event: a warning
        rows, _choices, skipped, summary, status, confirm = chat.remove(True, "0/coompanion.txt", False)
    assert "Kryssa i rutan" in status and (corpus / "coompanion.txt").exists()
    rows, _choices, skipped, summary, status, confirm = chat.remove(True, "0/coompanion.txt", True)
    assert not (corpus / "coompanion.txt").exists() and "borttagna 1" in status and confirm is False
    assert all(r[0] != "coompanion.txt" for r in rows)

    chat.rate("up", "", ask(chat, [], [], "Vilka kommuner var med i utvecklingsnätverket?")[2])
    csv_path = Path(chat.export_feedback(True))
    assert csv_path.read_text(encoding="utf-8-sig").startswith("id,tid (UTC),omdöme")


class FailingDocuments(Assistant):
    """An assistant whose document listing fails the given way (a fake: the failure is the point)."""

    def __init__(self, settings: Settings, error: Exception):
        super().__init__(settings)
        self.error = error

    def documents(self):
        raise self.error


def test_admin_view_tells_what_failed_and_logs_bugs(built, caplog: pytest.LogCaptureFixture):
    unreadable = ChatApp(FailingDocuments(built.settings, OSError(5, "Input/output error")))
    with caplog.at_level(logging.WARNING, logger="ui.app"):
        rows, choices, skipped, summary = unreadable._admin_view()
    assert rows == [] and skipped == [] and choices["choices"] == []
    assert summary.startswith("Underlaget kunde inte läsas (Input/output error).")
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]  # expected: no traceback

    caplog.clear()
    bug = ChatApp(FailingDocuments(built.settings, KeyError("corpus_dir")))
    with caplog.at_level(logging.WARNING, logger="ui.app"):
        rows, choices, skipped, summary = bug._admin_view()
    assert rows == [] and "kunde inte tas fram" in summary and "serverloggen" in summary
    (record,) = caplog.records
    assert record.levelname == "ERROR" and record.exc_info[0] is KeyError  # logged with its traceback


def test_admin_view_walks_each_corpus_folder_once(built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    corpus = tmp_path / "corpus"
    shutil.copytree(built.settings.corpus_dirs[0], corpus)
    (corpus / "ny.md").write_text("# Ny\n\nEn fil som ännu inte är indexerad.\n", encoding="utf-8")
    chat = ChatApp(Assistant(built.settings.with_(corpus_dirs=(corpus,)), built.embedder, WordOverlapScorer()))
    walked: list[Path] = []
    scandir = os.scandir

    def counted(path):
        walked.append(Path(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted)
    rows, choices, skipped, _ = chat._admin_view()
    assert walked.count(corpus.resolve()) == 1  # the removal choices and the unindexed files share one walk
    assert "ny.md" in [key.split("/", 1)[1] for _, key in choices["choices"]] and "ny.md" not in [r[0] for r in rows]
    assert ["ny.md", "inte indexerad än – indexera om"] in skipped


def test_chat_takes_text_only():
    chatbot = text_chatbot()
    file_part = {"type": "file", "file": {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}}
    for content in ([file_part], [{"type": "text", "text": "Hej"}, file_part],
                    [{"type": "component", "component": "file", "value": file_part["file"], "constructor_args": {},
                      "props": {}}]):
        payload = chatbot.data_model.model_validate([{"role": "user", "content": content}])
        with pytest.raises(gr.Error, match=TEXT_ONLY):
            chatbot.preprocess(payload)
    with pytest.raises(gr.Error, match=TEXT_ONLY):  # nothing is ever copied or fetched into Gradio's cache
        chatbot.move_resource_to_block_cache("/etc/hostname")
    text = chatbot.data_model.model_validate([{"role": "user", "content": [{"type": "text", "text": "Hej"}]}])
    assert chatbot.preprocess(text)[0]["content"][0]["text"] == "Hej"
    config = chatbot.get_config()
    assert (config["render_markdown"], config["latex_delimiters"], config["sanitize_html"]) == (False, [], True)

    # whatever a client put into the history, handlers hand back role and text only
    assert text_messages([{"role": "user", "content": [{"type": "text", "text": "Hej"}, file_part],
                           "metadata": {"title": "x"}}, {"role": "system", "content": "x"}, "skräp"]) == [
        {"role": "user", "content": "Hej"}]


def test_questions_are_escaped_and_capped(built):
    chat = ChatApp(Assistant(built.settings.with_(max_question_chars=40), built.embedder, built.relevance))
    _box, messages = chat.add_question("  Gäller <b>LOU</b> & LOV?  ", [])
    assert messages == [{"role": "user", "content": "Gäller &lt;b&gt;LOU&lt;/b&gt; &amp; LOV?"}]
    with pytest.warns(UserWarning, match="Frågan är för lång"):  # gr.Warning outside an event: a warning
        _box, same = chat.add_question("x" * 41, messages)
    assert same == messages  # not added; the text stays in the box to be shortened
    steps = list(chat.answer([*messages], []))
    assert steps[-1][1][0].question == "Gäller <b>LOU</b> & LOV?"  # asked as typed, not escaped


def test_login_tokens_and_back_off(built):
    chat = ChatApp(Assistant(built.settings.with_(admin_password="hemligt"), built.embedder, built.relevance))

    class Request:  # what Gradio's gr.Request offers: the client's address
        def __init__(self, host: str):
            self.client = type("Client", (), {"host": host})()

    ok, token, cookie, *_rest = chat.login("hemligt", "", Request("10.0.0.1"))
    assert ok is True and token and cookie == token and chat.tokens.valid(token)
    chat.reindex(True, token)
    _ok, token2, *_ = chat.login("hemligt", token, Request("10.0.0.1"))  # a new login replaces the old token
    assert token2 != token and not chat.tokens.valid(token)
    logout = chat.logout(token2)
    assert logout[0] is False and not chat.tokens.valid(token2)
    with pytest.raises(gr.Error, match="gått ut"):
        chat.reindex(True, token2)

    statuses = [chat.login("fel", "", Request("10.0.0.2"))[7] for _ in range(4)]
    assert "Fel lösenord." in statuses[0] and "Nästa försök" not in statuses[1]  # two typos cost nothing
    assert "Nästa försök tidigast om 1 s" in statuses[2] and "Försök igen om" in statuses[3]
    refused = chat.login("hemligt", "", Request("10.0.0.2"))
    assert refused[0] is False and "Försök igen om" in refused[7]  # even the right password, unchecked
    assert chat.login("hemligt", "", Request("10.0.0.3"))[0] is True  # another client is not affected
