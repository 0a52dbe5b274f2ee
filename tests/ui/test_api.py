"""The HTTP API (/api/v1) against a live `assistant serve`, driven with httpx.

Servers are subprocesses over the small mixed corpus (tests/conftest.py's ``served`` corpus, read only) with
an index of their own, built by the first server and reused by the others:
* ``server``: 127.0.0.1, no keys (loopback needs none): routes, JSON equal to the CLI's ``--json``,
  streaming, every error status, the schema;
* ``keyed``: 0.0.0.0 with ASSISTANT_API_KEYS and one API worker: key enforcement, keys never in the log,
  503 busy when saturated;
* ``unkeyed``: 0.0.0.0 without keys: the API refuses, one warning in the log, the chat still works.
All connect through 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from processes import stop

from assistant.cli import cli
from assistant.indexer import MANIFEST
from assistant.settings import Settings
from assistant.types import Document
from ui.api import (
    MAX_BODY_BYTES,
    AskResponse,
    DocumentsResponse,
    HealthResponse,
    SearchResponse,
    document_json,
    is_loopback,
    router,
)
from ui.documents import corpus_numbers

REPO = Path(__file__).resolve().parents[2]
API = "/api/v1"
ROUTES = {f"{API}/search": "post", f"{API}/ask": "post", f"{API}/documents": "get", f"{API}/health": "get"}
KEYS = ("nyckel-ett-7f3a9c", "nyckel-tva-b51e02")
WRONG_KEY = "fel-nyckel-0d4e61"
PDF_QUESTION = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"
DOCX_QUESTION = "Vem samordnar de regionala nätverken?"
UNRELATED = "Hur bakar man surdegsbröd?"
FOLLOW_UP = ("Vad är direktupphandlingsgränsen?", "Och när ska skälen dokumenteras?")
DISABLED_WARNING = "HTTP-API:t (/api/v1) är avstängt"


@dataclass
class Live:
    url: str
    corpus: Path
    index: Path
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, corpus: Path, index: Path, host: str, env_extra: dict[str, str]) -> Iterator[Live]:
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"ASSISTANT_FEEDBACK_DB": str(root / "feedback.sqlite3"), "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **env_extra})
    log = root / "server.log"
    cmd = [sys.executable, "-m", "assistant", "serve", "--host", host, "--port", str(port),
           "--corpus", str(corpus), "--index", str(index)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # model load and, for the first server, the index build
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield Live(url, corpus, index, log)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="module")
def server(root: Path, served) -> Iterator[Live]:
    yield from _serve(root / "loopback", served.corpus.dir, root / "index", "127.0.0.1", {})


@pytest.fixture(scope="module")
def keyed(root: Path, server: Live) -> Iterator[Live]:  # after `server`: its index is then built
    env = {"ASSISTANT_API_KEYS": f" {KEYS[0]} ,{KEYS[1]},", "ASSISTANT_API_CONCURRENCY": "1"}
    yield from _serve(root / "keyed", server.corpus, server.index, "0.0.0.0", env)


@pytest.fixture(scope="module")
def unkeyed(root: Path, server: Live) -> Iterator[Live]:
    yield from _serve(root / "unkeyed", server.corpus, server.index, "0.0.0.0", {})


@pytest.fixture(scope="module")
def http(server: Live) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def cli_json(*args: str, batch: list[dict], live: Live) -> list[dict]:
    """`assistant <args> --batch -` on the server's index, in-process (the model is the session's)."""
    lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in batch)
    result = CliRunner().invoke(cli, [*args, "--corpus", str(live.corpus), "--index", str(live.index),
                                      "--batch", "-"], input=lines)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timings_ms"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code and body["error"]["message"], body
    return body


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a text/event-stream response; ':' comments skipped."""
    events, name, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return events


# --- happy paths, same JSON as the CLI ---------------------------------------------------------------


def test_health_describes_the_served_index(http: httpx.Client, server: Live):
    r = http.get(f"{API}/health")
    assert r.status_code == 200
    body = HealthResponse.model_validate(r.json()).model_dump()
    name = (server.index / "CURRENT").read_text().strip()
    manifest = json.loads((server.index / name / MANIFEST).read_text())
    assert body["status"] == "ok" and body["generation"] == name
    assert body["documents"] == len(manifest["files"]) == 5
    assert body["chunks"] == manifest["chunks"] > 5
    assert (body["embedding_model"], body["answer_mode"], body["llm"]) == (
        "multilingual-e5-small-offline", "extractive", None)


def test_a_document_listing_resolves_each_corpus_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (tmp_path / "genväg").symlink_to(first)  # configured through a link, indexed resolved
    settings = Settings(corpus_dirs=(tmp_path / "genväg", second), index_dir=tmp_path / "index")
    docs = [Document(str(first), "x.md", "X"), Document(str(second), "y/z #1.pdf", "Z"),
            Document(str(tmp_path / "c"), "c.md", "C"), Document("", "n.md", "N")]
    resolved: list[Path] = []
    resolve = Path.resolve

    def counted(self, strict=False):
        resolved.append(self)
        return resolve(self, strict)

    monkeypatch.setattr(Path, "resolve", counted)
    numbers = corpus_numbers(settings)
    listed = [document_json(d, numbers) for d in docs]
    assert [(d["corpus"], d["url"]) for d in listed] == [(0, "/doc/0/x.md"), (1, "/doc/1/y/z%20%231.pdf"),
                                                          (None, None), (None, None)]
    assert resolved == [tmp_path / "genväg", second, first, second, tmp_path / "c"]  # once each


def test_documents_list_sources_dates_and_working_links(http: httpx.Client, server: Live, served):
    r = http.get(f"{API}/documents")
    assert r.status_code == 200
    body = DocumentsResponse.model_validate(r.json()).model_dump()
    docs = {d["source"]: d for d in body["documents"]}
    corpus = served.corpus
    expected = {p.relative_to(corpus.dir).as_posix() for p in corpus.files}
    assert set(docs) == expected and body["count"] == 5
    assert [d["source"] for d in body["documents"]] == sorted(expected)
    md = docs["direktupphandling.md"]
    assert (md["title"], md["corpus"], md["valid_as_of"], md["last_checked"], md["valid_until"]) == (
        "Direktupphandling för kommuner", 0, "2026-11-01", "2026-11-28", None)
    assert docs["handbok.pdf"]["title"] == corpus.pdf_title and docs["handbok.pdf"]["valid_as_of"] is None
    assert all(d["chunks"] >= 1 for d in docs.values())
    assert str(corpus.dir) not in r.text  # no server paths
    for source, doc in docs.items():  # the /doc/ link the chat uses serves that very file
        assert doc["url"].startswith("/doc/0/")
        page = http.get(doc["url"])
        assert page.status_code == 200, source
    assert "700 000 kronor" in http.get(md["url"]).text


def test_search_equals_cli_json(http: httpx.Client, server: Live):
    batch = [{"id": "pdf", "question": PDF_QUESTION},
             {"id": 2, "question": FOLLOW_UP[1], "history": [FOLLOW_UP[0]]},
             {"id": None, "question": UNRELATED}]
    for mode in (None, "lexical", "dense"):
        options = ["search", "-k", "3"] + (["--mode", mode] if mode else [])
        expected = cli_json(*options, batch=batch, live=server)
        for item, want in zip(batch, expected, strict=True):
            r = http.post(f"{API}/search", json={**item, "k": 3, **({"mode": mode} if mode else {})})
            assert r.status_code == 200, r.text
            got = SearchResponse.model_validate(r.json()).model_dump()
            assert set(got) == set(want) and len(got["hits"]) <= 3
            assert without_timings(got) == without_timings(want), (mode, item)
            assert {"embed_query", "total"} <= set(got["timings_ms"])
    top = http.post(f"{API}/search", json={"question": PDF_QUESTION}).json()
    assert len(top["hits"]) == 5 and top["hits"][0]["source"] == "handbok.pdf" and top["hits"][0]["page"] == 2


def test_ask_equals_cli_json(http: httpx.Client, server: Live):
    batch = [{"id": "pdf", "question": PDF_QUESTION},
             {"id": 7, "question": DOCX_QUESTION},
             {"id": "följd", "question": FOLLOW_UP[1], "history": [FOLLOW_UP[0]]},
             {"id": "nej", "question": UNRELATED}]
    expected = cli_json("ask", batch=batch, live=server)
    for item, want in zip(batch, expected, strict=True):
        r = http.post(f"{API}/ask", json=item)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text
        got = AskResponse.model_validate(r.json()).model_dump()
        assert set(got) == set(r.json()) == set(want)
        assert without_timings(got) == without_timings(want), item
    pdf, docx, follow, refused = (http.post(f"{API}/ask", json=item).json() for item in batch)
    assert not pdf["abstained"] and pdf["citations"][0]["source"] == "handbok.pdf" and "[1]" in pdf["answer"]
    assert docx["citations"][0]["source"] == "riktlinjer.docx"
    assert follow["citations"] and follow["citations"][0]["source"] == "direktupphandling.md"
    assert refused["abstained"] and refused["citations"] == [] and refused["nearest"]


@pytest.mark.parametrize("how", ["accept", "flag"])
def test_ask_streams_events_ending_in_the_same_json(http: httpx.Client, how: str):
    request = {"question": PDF_QUESTION, "id": "s"}
    plain = http.post(f"{API}/ask", json=request).json()
    kwargs = ({"headers": {"Accept": "text/event-stream"}, "json": request} if how == "accept"
              else {"json": {**request, "stream": True}})
    with http.stream("POST", f"{API}/ask", **kwargs) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    names = [name for name, _ in events]
    assert names[0] == "progress" and names[-1] == "done"
    assert set(names[1:-1]) == {"answer"} and len(names) - 2 >= 3, names
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "answer") == done["answer"]
    assert without_timings(done) == without_timings(plain)
    assert AskResponse.model_validate(done)


def test_stream_false_wins_over_accept_and_refusals_stream_too(http: httpx.Client):
    r = http.post(f"{API}/ask", json={"question": UNRELATED, "stream": False},
                  headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("application/json") and r.json()["abstained"]
    with http.stream("POST", f"{API}/ask", json={"question": UNRELATED, "stream": True}) as s:
        events = sse_events(s)
    assert events[-1][0] == "done" and events[-1][1]["abstained"]
    assert without_timings(events[-1][1]) == without_timings(r.json())


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "body"), [
    ("search", {}),
    ("ask", {}),
    ("ask", {"question": ""}),
    ("search", {"question": "   \n "}),
    ("ask", {"question": 42}),
    ("ask", {"question": None}),
    ("ask", {"question": "Vad gäller?", "history": "Vad är LOU?"}),
    ("search", {"question": "Vad gäller?", "history": ["Vad är LOU?", 3]}),
    ("search", {"question": "Vad gäller?", "k": 0}),
    ("search", {"question": "Vad gäller?", "k": 101}),
    ("search", {"question": "Vad gäller?", "k": "5"}),
    ("search", {"question": "Vad gäller?", "mode": "magisk"}),
    ("ask", {"question": "Vad gäller?", "k": 3}),  # search options are not ask options
    ("ask", {"question": "Vad gäller?", "stream": "ja"}),
    ("ask", ["Vad gäller?"]),
])
def test_bad_input_is_400(http: httpx.Client, route: str, body):
    assert_error(http.post(f"{API}/{route}", json=body), 400, "bad_request")


@pytest.mark.parametrize("content", [b'{"question": "Vad', b"", '{"question": "Vad gäller?"}'.encode("latin-1")])
def test_unreadable_json_is_400(http: httpx.Client, content: bytes):
    r = http.post(f"{API}/ask", content=content, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json" if content else "bad_request")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(http: httpx.Client, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    r = http.post(f"{API}/ask", content=json.dumps({"question": PDF_QUESTION}).encode(), headers=headers)
    assert_error(r, 415, "unsupported_media_type")


def test_large_bodies_are_413_before_parsing(http: httpx.Client):
    big = json.dumps({"question": "x", "history": ["y" * 1000] * 300}).encode()
    assert len(big) > MAX_BODY_BYTES
    headers = {"Content-Type": "application/json"}
    assert_error(http.post(f"{API}/ask", content=big, headers=headers), 413, "body_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server counts while reading
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    assert_error(http.post(f"{API}/search", content=chunked(), headers=headers), 413, "body_too_large")
    # not JSON at all, but too large: the size is checked before anything is parsed
    assert_error(http.post(f"{API}/search", content=b"\xff" * (MAX_BODY_BYTES + 1), headers=headers),
                 413, "body_too_large")


def test_question_length_limit_is_413(http: httpx.Client):
    limit = 2000  # Settings.max_question_chars
    word = "upphandling "
    at_limit = (word * (limit // len(word) + 1))[:limit]
    assert http.post(f"{API}/search", json={"question": at_limit, "k": 1}).status_code == 200
    assert_error(http.post(f"{API}/search", json={"question": at_limit + "x"}), 413, "question_too_long")
    assert_error(http.post(f"{API}/ask", json={"question": "Och då?", "history": [at_limit + "x"]}),
                 413, "question_too_long")


def test_unknown_routes_and_methods(http: httpx.Client):
    assert_error(http.get(f"{API}/nothing"), 404, "not_found")
    r = assert_error(http.get(f"{API}/ask"), 405, "method_not_allowed")
    assert r and http.get(f"{API}/ask").headers["allow"] == "POST"
    assert http.post(f"{API}/health", json={}).headers["allow"] == "GET"


def test_no_served_index_is_503_and_recovers(http: httpx.Client, server: Live):
    current = server.index / "CURRENT"
    aside = server.index / "CURRENT.aside"
    current.rename(aside)  # as before the first build finishes: nothing is served
    try:
        for r in (http.get(f"{API}/health"), http.get(f"{API}/documents"),
                  http.post(f"{API}/search", json={"question": PDF_QUESTION}),
                  http.post(f"{API}/ask", json={"question": PDF_QUESTION}),
                  http.post(f"{API}/ask", json={"question": PDF_QUESTION, "stream": True})):
            assert_error(r, 503, "no_index")
            assert int(r.headers["retry-after"]) > 0
    finally:
        aside.rename(current)
    assert http.get(f"{API}/health").status_code == 200
    assert http.post(f"{API}/ask", json={"question": PDF_QUESTION}).status_code == 200


def assert_index_routes_fail(http, search: dict, code: str, said: str, retry_after: str) -> None:
    """Search, ask, health and a streamed ask all answer 503 ``code`` with the message ``said``."""
    for r in (http.post(f"{API}/search", json=search), http.post(f"{API}/ask", json=search),
              http.get(f"{API}/health")):
        assert assert_error(r, 503, code)["error"]["message"] == said
        assert r.headers["retry-after"] == retry_after
    with http.stream("POST", f"{API}/ask", json={**search, "stream": True}) as r:
        assert sse_events(r)[-1] == ("error", {"error": {"code": code, "message": said}})


def test_a_lost_chroma_server_is_503_naming_it_and_served_again_when_back(tmp_path: Path, corpus,
                                                                           own_chroma_server):
    base = own_chroma_server.url
    token = "hemlig-chroma-nyckel-91b7"  # a plain `chroma run` ignores it; it must never be shown or logged
    env = {"ASSISTANT_CHROMA_URL": base.replace("http://", "http://anna:hemligt@"), "ASSISTANT_CHROMA_TOKEN": token}
    with contextlib.contextmanager(_serve)(tmp_path / "serve", corpus.dir, tmp_path / "index", "127.0.0.1",
                                           env) as live, live.client() as http:
        search = {"question": PDF_QUESTION}
        assert http.post(f"{API}/search", json=search).status_code == 200
        assert http.get(f"{API}/health").status_code == 200

        own_chroma_server.stop()
        said = f"Chroma-servern på {base} svarar inte; kontrollera ASSISTANT_CHROMA_URL och att servern körs."
        assert_index_routes_fail(http, search, "index_unavailable", said, retry_after="10")

        own_chroma_server.start()  # same port, same data: no restart of the app
        assert http.get(f"{API}/health").status_code == 200
        r = http.post(f"{API}/search", json=search)
        assert r.status_code == 200 and r.json()["hits"]
        assert not http.post(f"{API}/ask", json=search).json()["abstained"]
    logged = live.log.read_text(errors="replace")
    warning = f"Indexets Chroma-server kan inte användas: {said}\n"
    assert logged.count(warning) == 4  # one line per failed request (search, ask, health, streamed ask)
    assert "Traceback" not in logged and "hemligt" not in logged and token not in logged


def test_a_collection_lost_on_the_server_is_503_no_index_saying_to_index_again(tmp_path: Path, corpus, chroma_server,
                                                                               hashing_embedder, overlap_scorer):
    from assistant.indexer import build_index, current_generation
    from assistant.pipeline import Assistant
    from assistant.store import SERVER_PREFIX, server_client

    settings = Settings(corpus_dirs=(corpus.dir,), index_dir=tmp_path / "index", chroma_url=chroma_server)
    build_index(settings, hashing_embedder)
    app = FastAPI()
    app.include_router(router(Assistant(settings, hashing_embedder, overlap_scorer)))
    http = TestClient(app)
    search = {"question": PDF_QUESTION}
    assert http.post(f"{API}/search", json=search).status_code == 200
    assert http.get(f"{API}/health").json()["status"] == "ok"

    generation = current_generation(settings.index_dir).path.name
    server_client(settings).delete_collection(SERVER_PREFIX + generation)  # the server came back without its data
    said = (f"Indexets samling ({generation}) finns inte på Chroma-servern {chroma_server}: servern har tappat "
            "sina data, eller ASSISTANT_CHROMA_URL (eller _TENANT, _DATABASE) pekar på en annan. Kör "
            "`assistant index` igen.")
    # health too: a load balancer polling it stops sending questions that could only fail
    assert_index_routes_fail(http, search, "no_index", said, retry_after="30")

    build_index(settings, hashing_embedder)  # what the message says
    assert http.post(f"{API}/search", json=search).json()["hits"]
    assert http.get(f"{API}/health").json()["status"] == "ok"


# --- schema and docs -------------------------------------------------------------------------------------


def test_openapi_lists_exactly_the_api_routes(http: httpx.Client):
    r = http.get(f"{API}/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) for path, ops in schema["paths"].items()} == {p: {m} for p, m in ROUTES.items()}
    components = schema["components"]["schemas"]
    assert {"SearchRequest", "AskRequest", "SearchResponse", "AskResponse", "ErrorResponse"} <= set(components)
    for name in ("SearchRequest", "AskRequest"):
        for field, prop in components[name]["properties"].items():
            assert " / " in prop.get("description", ""), (name, field)  # Swedish / English
    for path, method in ROUTES.items():
        operation = schema["paths"][path][method]
        assert "422" not in operation["responses"] and "503" in operation["responses"]
    ask = schema["paths"][f"{API}/ask"]["post"]
    assert {"application/json", "text/event-stream"} <= set(ask["responses"]["200"]["content"])
    assert all(f"`{event}`" in ask["description"] for event in ("progress", "answer", "done", "error"))
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_docs_page_and_no_app_level_docs(http: httpx.Client):
    r = http.get(f"{API}/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert all(f"{method.upper()} {path}" in r.text for path, method in ROUTES.items())
    assert "<script" not in r.text and "cdn" not in r.text.lower()  # nothing fetched from elsewhere
    for path in ("/docs", "/redoc"):
        assert http.get(path).status_code == 404


# --- keys, refusal without keys, saturation -----------------------------------------------------------------


def test_keys_are_required_off_loopback(keyed: Live):
    with keyed.client() as http:
        for headers in ({}, {"Authorization": f"Bearer {WRONG_KEY}"}, {"Authorization": f"Basic {KEYS[0]}"},
                        {"Authorization": "Bearer"}, {"Authorization": f"Bearer {KEYS[0]}x"}):
            for r in (http.get(f"{API}/health", headers=headers),
                      http.post(f"{API}/ask", json={"question": PDF_QUESTION}, headers=headers),
                      # the key is checked first: no hint about content type or size without it
                      http.post(f"{API}/search", content=b"x" * (MAX_BODY_BYTES + 1), headers=headers)):
                body = assert_error(r, 401, "unauthorized")
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert WRONG_KEY not in json.dumps(body) and KEYS[0] not in json.dumps(body)
        for key in KEYS:
            auth = {"Authorization": f"Bearer {key}"}
            assert http.get(f"{API}/health", headers=auth).json()["status"] == "ok"
            r = http.post(f"{API}/ask", json={"question": PDF_QUESTION}, headers=auth)
            assert r.status_code == 200 and r.json()["citations"]
            assert http.get(f"{API}/documents", headers={"Authorization": f"bearer {key}"}).status_code == 200
        assert http.get(f"{API}/openapi.json").status_code == 200  # the schema is public
        assert http.get("/").status_code == 200  # and the chat needs no key
    log = keyed.log.read_text(errors="replace")
    assert DISABLED_WARNING not in log
    assert not any(secret in log for secret in (*KEYS, WRONG_KEY))


def test_saturated_api_answers_503_busy_with_retry_after(keyed: Live):
    """One API worker (ASSISTANT_API_CONCURRENCY=1): of a burst of asks some must be turned away at once."""
    auth = {"Authorization": f"Bearer {KEYS[1]}"}
    question = " ".join([PDF_QUESTION] * 18)[:1900]  # a long question: the model needs a while for it
    burst = 12

    def ask(barrier: threading.Barrier) -> httpx.Response:
        with keyed.client() as http:
            barrier.wait()
            return http.post(f"{API}/ask", json={"question": question}, headers=auth)

    statuses: list[int] = []
    for _ in range(5):
        barrier = threading.Barrier(burst)
        with ThreadPoolExecutor(burst) as pool:
            responses = list(pool.map(ask, [barrier] * burst))
        for r in responses:
            if r.status_code == 503:
                assert_error(r, 503, "busy")
                assert r.headers["retry-after"] == "1"
            else:
                assert r.status_code == 200, r.text
        statuses += [r.status_code for r in responses]
        if 503 in statuses and 200 in statuses:
            break
    assert 200 in statuses and 503 in statuses, statuses
    with keyed.client() as http:  # nothing stays taken: alone, a request is served
        assert http.post(f"{API}/search", json={"question": PDF_QUESTION}, headers=auth).status_code == 200


def test_no_keys_off_loopback_disables_the_api_but_not_the_chat(unkeyed: Live):
    with unkeyed.client() as http:
        for r in (http.get(f"{API}/health"), http.post(f"{API}/ask", json={"question": PDF_QUESTION}),
                  http.get(f"{API}/documents", headers={"Authorization": f"Bearer {KEYS[0]}"})):
            assert_error(r, 503, "api_disabled")
        assert http.get("/").status_code == 200
        assert http.get("/doc/0/direktupphandling.md").status_code == 200
    assert unkeyed.log.read_text(errors="replace").count(DISABLED_WARNING) == 1


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.5", False),
    ("assistent.kommun.se", False),
])
def test_which_hosts_count_as_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback
