"""Serving documents at /doc/...: only indexed files inside a corpus folder, nothing else on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ui_corpus import write_pdf

from assistant.settings import Settings
from assistant.types import Document
from ui.documents import document_url, resolve_document, router, text_fragment


@pytest.fixture
def layout(tmp_path: Path):
    """Two corpus folders, a secret next to them, and a manifest listing some of the corpus files."""
    corpus = tmp_path / "corpus"
    other = tmp_path / "other"
    (corpus / "regler").mkdir(parents=True)
    other.mkdir()
    (tmp_path / "secret.txt").write_text("lösenord", encoding="utf-8")
    (corpus / "regler" / "reserverade.md").write_text("---\ntitle: Reserverade\n---\n# Reserverade\n\nText om "
                                                      "<script>alert(1)</script> reservation.\n", encoding="utf-8")
    (corpus / "anteckning.txt").write_text("Anteckning om samverkan.", encoding="utf-8")
    (corpus / "sida.html").write_text("<html><body><script>alert(1)</script><p>Hej</p></body></html>",
                                      encoding="utf-8")
    (corpus / "ej-indexerad.md").write_text("# Inte i indexet", encoding="utf-8")
    write_pdf(corpus / "natverket.pdf", [("Inledning", "Sida ett."), ("Kommuner", "Sida två.")], "Nätverket")
    (other / "annan.md").write_text("# Annan", encoding="utf-8")
    os.symlink(tmp_path / "secret.txt", corpus / "genvag.txt")  # a link out of the corpus
    settings = Settings(corpus_dirs=(corpus, other), index_dir=tmp_path / "index")
    root, other_root = str(corpus.resolve()), str(other.resolve())
    manifest = [
        Document(root, "regler/reserverade.md", "Reserverade"),
        Document(root, "anteckning.txt", "Anteckning"),
        Document(root, "sida.html", "Sida"),
        Document(root, "natverket.pdf", "Nätverket"),
        Document(root, "genvag.txt", "Genväg"),  # listed, but resolves outside
        Document(other_root, "annan.md", "Annan"),
    ]
    return settings, manifest, tmp_path


def test_indexed_files_resolve(layout):
    settings, manifest, tmp = layout
    expected = (tmp / "corpus" / "regler" / "reserverade.md").resolve()
    assert resolve_document(settings, manifest, 0, "regler/reserverade.md") == expected
    assert resolve_document(settings, manifest, 1, "annan.md") == (tmp / "other/annan.md").resolve()
    # redundant path segments that stay inside the folder are fine
    assert resolve_document(settings, manifest, 0, "regler/../anteckning.txt") is not None


@pytest.mark.parametrize("number, source", [
    (0, "../secret.txt"),                 # traversal out of the corpus
    (0, "regler/../../secret.txt"),
    (0, "%s"),                            # absolute path (filled in below)
    (0, "genvag.txt"),                    # symlink pointing outside, even though the manifest lists it
    (0, "ej-indexerad.md"),               # in the corpus folder but not in the index
    (0, "annan.md"),                      # indexed, but in another corpus folder
    (1, "regler/reserverade.md"),         # right file, wrong folder number
    (0, "regler"),                        # a directory
    (0, "saknas.md"),                     # does not exist
    (2, "annan.md"), (-1, "annan.md"),    # no such corpus folder
    (0, ""), (0, "anteckning.txt\x00.pdf"),
])
def test_everything_else_is_refused(layout, number, source):
    settings, manifest, tmp = layout
    if source == "%s":
        source = str(tmp / "secret.txt")
    assert resolve_document(settings, manifest, number, source) is None


def test_manifest_entry_without_corpus_dir_is_not_trusted(layout, monkeypatch):
    settings, _, tmp = layout
    monkeypatch.chdir(tmp / "corpus")  # an empty corpus_dir would otherwise resolve to the working folder
    assert resolve_document(settings, [Document("", "anteckning.txt", "")], 0, "anteckning.txt") is None


def test_urls_point_at_page_or_quote(layout):
    settings, _, tmp = layout
    root = tmp / "corpus"
    assert document_url(settings, str(root), "natverket.pdf", 2) == "/doc/0/natverket.pdf#page=2"
    assert document_url(settings, str(tmp / "other"), "annan.md") == "/doc/1/annan.md"
    url = document_url(settings, str(root), "regler/reserverade.md", None, "Kommunen får reservera en upphandling, "
                       "om minst 30 procent av de anställda tillhör målgruppen.")
    assert url.startswith("/doc/0/regler/reserverade.md#:~:text=Kommunen%20f%C3%A5r%20reservera%20en%20upphandling%2C,")
    assert document_url(settings, str(tmp / "elsewhere"), "x.md") is None  # not a corpus folder: no link
    assert text_fragment("ett") == ""
    assert text_fragment("a-b, c") == "#:~:text=a-b%2C%20c"


def test_route_serves_indexed_documents_safely(layout):
    settings, manifest, _ = layout
    entries = list(manifest)
    app = FastAPI()
    app.include_router(router(settings, lambda: entries))
    client = TestClient(app)

    md = client.get("/doc/0/regler/reserverade.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/html")
    assert "<h1>Reserverade</h1>" in md.text and "<title>Reserverade</title>" in md.text
    assert "<script>" not in md.text  # raw HTML in Markdown is shown as text
    assert md.headers["content-security-policy"].startswith("sandbox")
    assert md.headers["x-content-type-options"] == "nosniff"

    pdf = client.get("/doc/0/natverket.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline") and pdf.content.startswith(b"%PDF")

    txt = client.get("/doc/0/anteckning.txt")
    assert txt.headers["content-type"].startswith("text/plain") and txt.text == "Anteckning om samverkan."

    page = client.get("/doc/0/sida.html")  # corpus HTML is shown, but sandboxed: its scripts cannot run here
    assert page.status_code == 200 and "sandbox" in page.headers["content-security-policy"]

    for bad in ["/doc/0/../secret.txt", "/doc/0/%2e%2e/secret.txt", "/doc/0/..%2Fsecret.txt", "/doc/0/genvag.txt",
                "/doc/0/ej-indexerad.md", "/doc/5/annan.md", "/doc/0//etc/passwd", "/doc/0/%2Fetc%2Fpasswd"]:
        response = client.get(bad)
        assert response.status_code in (404, 422), bad  # 422: the client normalised ".." away from the number
        assert "lösenord" not in response.text

    # the manifest is read per request: a document removed from the index stops being served
    entries[:] = [e for e in entries if e.source != "anteckning.txt"]
    assert client.get("/doc/0/anteckning.txt").status_code == 404


@pytest.mark.parametrize("name", ["rad\nbrytning.txt", "tab\tbort.txt", "vagn\rretur.txt", "kontroll\x01.md",
                                  "mål och medel #2 (100% klart?).txt", "Överenskommelse åäö.txt"])
def test_every_file_name_gets_a_working_link(tmp_path: Path, name: str):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / name).write_text("Text om samverkan.", encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    entries = [Document(str(corpus.resolve()), name, "T")]
    app = FastAPI()
    app.include_router(router(settings, lambda: entries))
    url = document_url(settings, str(corpus), name)
    assert url.startswith("/doc/0/") and not any(ch in url for ch in "\n\r\t\x01 #?åäö")
    response = TestClient(app).get(url)
    assert response.status_code == 200 and "samverkan" in response.text


def test_text_documents_are_decoded_as_when_indexed(tmp_path: Path):
    """An old cp1252 file reads as Swedish in the document view, as it did when it was indexed and quoted."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "gammal.txt").write_bytes("Företaget återinvesterar vinsten i verksamheten.".encode("cp1252"))
    (corpus / "blandad.md").write_bytes(b"# Rubrik\n\n\xc3\x85tta sociala f\xc3\xb6retag\xff deltog.")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    root = str(corpus.resolve())
    entries = [Document(root, "gammal.txt", "Gammal"),
               Document(root, "blandad.md", "Blandad")]
    app = FastAPI()
    app.include_router(router(settings, lambda: entries))
    client = TestClient(app)
    assert client.get("/doc/0/gammal.txt").text == "Företaget återinvesterar vinsten i verksamheten."
    # one stray byte in a UTF-8 file costs one character, not the whole file's å, ä and ö
    assert "Åtta sociala företag\ufffd deltog." in client.get("/doc/0/blandad.md").text


def test_markdown_view_names_the_sources_instead_of_their_keys(tmp_path: Path):
    """The reader follows a quote into the document and sees the same spelled-out source, not "S45"."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "reserverat.md").write_text(
        '---\ntitle: Reserverat\nsources: ["S45 – upphandlingsmyndigheten.se/reserverad-upphandling/"]\n---\n'
        "# Reserverat\n\nEn kommun får reservera upphandlingen (källa: S45).\n\n## Källor\n\n"
        "- S45 – Upphandlingsmyndigheten, reserverad upphandling\n", encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    entries = [Document.from_manifest({"corpus_dir": str(corpus.resolve()), "source": "reserverat.md",
                                       "title": "Reserverat"})]
    app = FastAPI()
    app.include_router(router(settings, lambda: entries))
    page = TestClient(app).get("/doc/0/reserverat.md").text
    assert "reservera upphandlingen (källa: Upphandlingsmyndigheten, reserverad upphandling)." in page
    assert "(källa: S45)" not in page


def test_markdown_view_parses_the_file_for_its_keys_once_and_renders_once(tmp_path: Path, monkeypatch):
    """One parse finds the front matter, the reference list and the keys; one renders the spelled-out body."""
    from markdown_it import MarkdownIt

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "giltig.md").write_text("---\ntitle: Giltig\nsources: [\"S1 – Källan\"]\n---\n# Giltig\n\n"
                                      "Text (källa: S1).\n", encoding="utf-8")
    (corpus / "trasig.md").write_text("---\ntitle: [trasig\n---\n# Trasig\n\nText.\n", encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    root = str(corpus.resolve())
    app = FastAPI()
    app.include_router(router(settings, lambda: [Document(root, "giltig.md", "Giltig"),
                                                 Document(root, "trasig.md", "Trasig")]))
    client = TestClient(app)
    parsed: list[str] = []
    original = MarkdownIt.parse

    def counted(self, src, env=None):
        parsed.append(src)
        return original(self, src, env)

    monkeypatch.setattr(MarkdownIt, "parse", counted)
    page = client.get("/doc/0/giltig.md").text
    assert len(parsed) == 2 and parsed[1] == "# Giltig\n\nText (källa: Källan).\n"
    assert "<h1>Giltig</h1>" in page and "title:" not in page
    # a broken front matter is shown as written (it is all the reader can see of it), never dropped
    broken = client.get("/doc/0/trasig.md").text
    assert "title: [trasig" in broken and "<h1>Trasig</h1>" in broken
