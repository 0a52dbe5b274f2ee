"""assistant.store in both deployments: the embedded Chroma and a real Chroma server (``chroma run``) give the
same index and the same search results, several app processes on one server switch generations together,
the Chroma batch limit comes from the client, and the server settings (tenant, database, token behind a
proxy) reach the server, with clear messages when the server refuses them."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from assistant.indexer import IndexBuildError, NoIndexError, build_index, current_generation
from assistant.pipeline import Assistant
from assistant.retrieval import IndexMismatchError, LoadedIndex
from assistant.settings import Settings, SettingsError
from assistant.store import SERVER_PREFIX, ChromaServerError, ChunkStore, CollectionMissingError, server_client
from assistant.summaries import FILES
from assistant.types import Chunk

SERVED_FILES = sorted(["manifest.json", *FILES])  # a server generation's folder: no Chroma files

QUESTIONS = [
    "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?",
    "Vad är direktupphandlingsgränsen?",
    "Vem samordnar de regionala nätverken för sociala företag?",
    "samverkan mellan kommun och ideell förening",
]


def test_embedded_and_server_give_the_same_index_and_the_same_results(corpus, tmp_path, embedder, chroma_server):
    embedded = Settings(corpus_dirs=(corpus.dir,), index_dir=tmp_path / "inbaddad")
    server = embedded.with_(index_dir=tmp_path / "server", chroma_url=chroma_server)
    reports = [build_index(s, embedder) for s in (embedded, server)]
    assert reports[0].chunks == reports[1].chunks > 0
    indexes = [LoadedIndex.open(s, embedder) for s in (embedded, server)]
    assert [c.id for c in indexes[0].chunks] == [c.id for c in indexes[1].chunks]
    assert indexes[0].chunks == indexes[1].chunks  # text, sections, pages, metadata
    assert np.allclose(indexes[0].vectors, indexes[1].vectors, atol=1e-6)

    assistants = [Assistant(s, embedder) for s in (embedded, server)]
    for question in QUESTIONS:
        for mode in ("hybrid", "dense", "lexical"):
            a, b = (x.retriever.search(question, k=8, mode=mode).hits for x in assistants)
            assert [h.chunk.id for h in a] == [h.chunk.id for h in b], (question, mode)
            assert np.allclose([h.score for h in a], [h.score for h in b], rtol=0, atol=1e-5)
            assert np.allclose([h.dense for h in a], [h.dense for h in b], rtol=0, atol=1e-5)
        # Chroma's own nearest neighbours, over every chunk
        q = embedder.embed_queries([question])[0]
        a, b = (i.store.query(q, len(i.chunks)) for i in indexes)
        assert [i for i, _ in a] == [i for i, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], rtol=0, atol=1e-5)
    # and through the whole pipeline (the relevance model reorders): the same answer
    answers = [{k: v for k, v in x.ask(QUESTIONS[0]).to_json().items() if k != "timings_ms"} for x in assistants]
    assert not answers[0]["abstained"]
    assert answers[0] == answers[1]


def test_a_build_in_another_process_switches_every_server_reader(corpus, settings_for, embedder, chroma_server):
    settings = settings_for(corpus.dir, chroma_url=chroma_server)
    build_index(settings, embedder)
    first = current_generation(settings.index_dir).path.name
    readers = [Assistant(settings, embedder), Assistant(settings, embedder)]  # two app processes' views
    question = "Vilken myndighet ansvarar för tillsynen över sociala företag?"
    for reader in readers:
        assert "tillsyn.md" not in {h.chunk.source for h in reader.search(question)[0]}
    (corpus.dir / "tillsyn.md").write_text(
        "# Tillsyn\n\nTillsynen över sociala företag ansvarar Tillsynsmyndigheten för sociala företag för.\n",
        encoding="utf-8",
    )
    env = {**os.environ, "ASSISTANT_CHROMA_URL": chroma_server, "ASSISTANT_INDEX_DIR": str(settings.index_dir),
           "ASSISTANT_CORPUS_DIRS": str(corpus.dir), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "assistant", "index", "--json"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    second = current_generation(settings.index_dir).path.name
    assert second != first
    assert sorted(p.name for p in (settings.index_dir / second).iterdir()) == SERVED_FILES  # no Chroma files
    for reader in readers:
        hits, _ = reader.search(question)
        assert hits[0].chunk.source == "tillsyn.md"
        assert reader.loaded_index.name == second
    names = {c.name for c in server_client(settings).list_collections()}
    assert {SERVER_PREFIX + first, SERVER_PREFIX + second} <= names  # the previous one is kept for a while


def test_an_embedded_index_is_not_served_from_a_server_and_is_rebuilt_there(tiny, settings_for, embedder,
                                                                            chroma_server):
    embedded = settings_for(tiny)
    first = build_index(embedded, embedder)
    server = embedded.with_(chroma_url=chroma_server)
    with pytest.raises(IndexMismatchError):
        LoadedIndex.open(server, embedder)
    report = build_index(server, embedder)
    assert report.rebuilt and report.chunks_embedded == report.chunks == first.chunks
    hits, _ = Assistant(server, embedder).search("Hur stor andel ska ha funktionsnedsättning?")
    assert hits[0].chunk.source == "reserverade.md"


def test_a_generation_whose_collection_is_gone_is_reported_and_rebuilt(tiny, settings_for, embedder,
                                                                       chroma_server):
    settings = settings_for(tiny, chroma_url=chroma_server)
    first = build_index(settings, embedder)
    # the server lost the collection (or ASSISTANT_CHROMA_URL now names another server)
    server_client(settings).delete_collection(SERVER_PREFIX + current_generation(settings.index_dir).path.name)
    with pytest.raises(NoIndexError, match="finns inte på Chroma-servern"):
        LoadedIndex.open(settings, embedder)
    report = build_index(settings, embedder)  # nothing changed in the corpus, but nothing can be copied
    assert report.rebuilt and report.chunks_embedded == report.chunks == first.chunks
    assert LoadedIndex.open(settings, embedder).store.count() == first.chunks


def test_add_and_read_more_chunks_than_one_chroma_batch(tmp_path, deployment):
    settings = Settings(index_dir=tmp_path / "index", **deployment)
    store = ChunkStore(tmp_path / "index" / "gen-batch-test", None, settings, create=True)
    assert store.batch_size == store.client.get_max_batch_size() > 0
    n = store.batch_size + 7
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{i:05d}", text=f"avsnitt {i}", source=f"dok{i % 3}.md", corpus_dir="/korpus",
                    title="Dokument", section="", page=None, position=i) for i in range(n)]
    store.add(chunks, vectors)
    assert store.count() == n
    assert sorted(c.id for c in store.chunks()) == [c.id for c in chunks]  # read back in pages
    got = store.vectors([c.id for c in chunks])
    assert np.allclose(np.stack([got[c.id] for c in chunks]), vectors, atol=1e-6)
    assert store.query(vectors[42], 3)[0][0] == "c00042"


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://host:8000", "http://", "http://host:8000/chroma"])
def test_a_malformed_chroma_url_is_refused(url):
    with pytest.raises(ValueError, match="ASSISTANT_CHROMA_URL"):
        server_client(Settings(chroma_url=url))


# --- the server settings: tenant and database, a token checked by a proxy ------------------------------


def test_a_tenant_and_database_of_their_own_hold_the_index(tiny, settings_for, hashing_embedder, overlap_scorer,
                                                           chroma_server):
    url = urlsplit(chroma_server)
    admin = chromadb.AdminClient(ChromaSettings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI", chroma_server_host=url.hostname,
        chroma_server_http_port=url.port, anonymized_telemetry=False))
    tenant, database = f"kommunnatverket-{uuid.uuid4().hex[:8]}", "dokumentarkiv"  # the server is per session
    admin.create_tenant(tenant)
    admin.create_database(database, tenant=tenant)
    settings = settings_for(tiny, chroma_url=chroma_server, chroma_tenant=tenant, chroma_database=database)
    report = build_index(settings, hashing_embedder)
    assistant = Assistant(settings, hashing_embedder, overlap_scorer)
    hits, _ = assistant.search("Hur stor andel ska ha funktionsnedsättning?")
    assert hits[0].chunk.source == "reserverade.md"

    name = SERVER_PREFIX + current_generation(settings.index_dir).path.name
    own = server_client(settings)
    assert (own.tenant, own.database) == (tenant, database)
    assert own.get_collection(name).count() == report.chunks
    default = settings.with_(chroma_tenant="", chroma_database="")
    with pytest.raises(NotFoundError):
        server_client(default).get_collection(name)
    with pytest.raises(NoIndexError, match="_TENANT, _DATABASE"):  # served from the default database: not there
        LoadedIndex.open(default, hashing_embedder)


def test_a_tenant_or_database_that_does_not_exist_is_named(tiny, settings_for, hashing_embedder, chroma_server):
    for changes in ({"chroma_tenant": "finns-inte"}, {"chroma_database": "finns-inte"}):
        settings = settings_for(tiny, chroma_url=chroma_server, **changes)
        with pytest.raises(IndexBuildError,
                           match=r"ingen tenant .*; kontrollera ASSISTANT_CHROMA_TENANT och ASSISTANT_CHROMA_DATABASE"):
            build_index(settings, hashing_embedder)


TOKEN = "k0mmun-nyckel.7f3a"


class TokenProxy:
    """A reverse proxy in front of the Chroma server that lets only requests with the right X-Chroma-Token
    through, as a gateway in front of a self-hosted Chroma would (``chroma run`` has no auth of its own);
    a refusal is nginx's plain 401 page, not a Chroma error body, and a server behind it that does not answer
    is nginx's 502 page. Counts what it forwarded and refused;
    ``token`` may be changed while it runs (the gateway's key rotated)."""

    HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
                            "content-length", "proxy-authorization", "proxy-authenticate"})

    def __init__(self, upstream: str, token: str):
        target = urlsplit(upstream)
        self.forwarded = self.refused = 0
        self.token = token
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get("X-Chroma-Token") != proxy.token:
                    proxy.refused += 1
                    self.reply(401, [("Content-Type", "text/html")],
                               b"<html><h1>401 Authorization Required</h1></html>")
                    return
                proxy.forwarded += 1
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in proxy.HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.reply(response.status, [(k, v) for k, v in response.getheaders()
                                                 if k.lower() not in proxy.HOP_BY_HOP], data)
                except OSError:
                    self.reply(502, [("Content-Type", "text/html")], b"<html><h1>502 Bad Gateway</h1></html>")
                finally:
                    upstream.close()

            def reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.forward()

            def do_POST(self) -> None:
                self.forward()

            def do_PUT(self) -> None:
                self.forward()

            def do_DELETE(self) -> None:
                self.forward()

            def do_PATCH(self) -> None:
                self.forward()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def token_proxy(chroma_server) -> Iterator[TokenProxy]:
    proxy = TokenProxy(chroma_server, TOKEN)
    yield proxy
    proxy.close()


def test_the_token_is_sent_to_a_proxy_that_requires_it(tiny, settings_for, hashing_embedder, overlap_scorer,
                                                       token_proxy):
    settings = settings_for(tiny, chroma_url=token_proxy.url, chroma_token=TOKEN)
    build_index(settings, hashing_embedder)
    hits, _ = Assistant(settings, hashing_embedder, overlap_scorer).search("Vad är idéburet offentligt partnerskap?")
    assert hits[0].chunk.source == "iop.txt"
    assert token_proxy.forwarded > 0 and token_proxy.refused == 0  # everything went through it, with the token


@pytest.mark.parametrize("token, message", [
    ("fel-nyckel", r"godtog inte ASSISTANT_CHROMA_TOKEN \(HTTP 401\)"),
    ("", r"kräver en nyckel \(HTTP 401\); ange den i ASSISTANT_CHROMA_TOKEN"),
], ids=["wrong-token", "no-token"])
def test_a_refused_token_is_a_clear_message_without_the_token(tiny, settings_for, hashing_embedder, token_proxy,
                                                              token, message):
    good = settings_for(tiny, chroma_url=token_proxy.url, chroma_token=TOKEN)
    build_index(good, hashing_embedder)
    bad = good.with_(chroma_token=token)
    with pytest.raises(ChromaServerError, match=message) as refused:
        server_client(bad)
    with pytest.raises(IndexBuildError, match=message) as build:  # the CLI shows an IndexBuildError's message
        build_index(bad, hashing_embedder)
    with pytest.raises(ChromaServerError, match=message) as served:  # the chat and the API: 503 with the message
        LoadedIndex.open(bad, hashing_embedder)
    for error in (refused, build, served):
        assert TOKEN not in str(error.value) and (not token or token not in str(error.value))
    assert token_proxy.refused > 0


def test_the_cli_names_the_token_setting_when_the_proxy_refuses_it(tiny, tmp_path, token_proxy):
    env = {**os.environ, "ASSISTANT_CHROMA_URL": token_proxy.url, "ASSISTANT_CHROMA_TOKEN": "fel-nyckel",
           "ASSISTANT_INDEX_DIR": str(tmp_path / "index"), "ASSISTANT_CORPUS_DIRS": str(tiny),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "assistant", "index"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    # said once, as the error: the build stopped before it began a generation it would have to clean up
    assert done.stderr.count("godtog inte") == 1
    assert f"Chroma-servern på {token_proxy.url} godtog inte ASSISTANT_CHROMA_TOKEN (HTTP 401)" in done.stderr
    assert "Traceback" not in done.stderr and "fel-nyckel" not in done.stderr + done.stdout


def test_an_unreachable_server_and_a_token_chroma_cannot_send_are_named(tiny, settings_for, hashing_embedder):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(tiny, chroma_url=f"http://127.0.0.1:{port}")
    with pytest.raises(IndexBuildError, match=f"127.0.0.1:{port} svarar inte; kontrollera ASSISTANT_CHROMA_URL"):
        build_index(settings, hashing_embedder)
    assert not list(settings.index_dir.glob("gen-*"))  # refused before a generation (or any embedding) began
    with pytest.raises(ChromaServerError, match="ASSISTANT_CHROMA_TOKEN får bara innehålla ASCII") as refused:
        server_client(settings.with_(chroma_token="nyckel-åäö"))
    assert "nyckel-åäö" not in str(refused.value)


def test_a_server_lost_while_serving_is_named_and_used_again_when_back(tiny, settings_for, hashing_embedder,
                                                                      overlap_scorer, own_chroma_server):
    base = own_chroma_server.url
    settings = settings_for(tiny, chroma_url=base.replace("http://", "http://anna:hemligt@"))  # never sent or shown
    build_index(settings, hashing_embedder)
    assistant = Assistant(settings, hashing_embedder, overlap_scorer)
    question = "Vad är idéburet offentligt partnerskap?"
    assert assistant.search(question)[0][0].chunk.source == "iop.txt"
    served = assistant.retriever
    assistant.check_store()

    own_chroma_server.stop()
    said = f"Chroma-servern på {base} svarar inte; kontrollera ASSISTANT_CHROMA_URL och att servern körs."
    for call in (lambda: assistant.search(question), lambda: assistant.ask(question), assistant.check_store):
        with pytest.raises(ChromaServerError) as lost:
            call()
        assert str(lost.value) == said and "hemligt" not in str(lost.value)

    own_chroma_server.start()  # same port, same data
    assistant.check_store()
    assert assistant.search(question)[0][0].chunk.source == "iop.txt"
    assert not assistant.ask(question).abstained
    assert assistant.retriever is served  # nothing was reopened: the client simply connected again


def test_a_token_refused_while_serving_is_named_without_the_token(tiny, settings_for, hashing_embedder,
                                                                  overlap_scorer, token_proxy):
    settings = settings_for(tiny, chroma_url=token_proxy.url, chroma_token=TOKEN)
    build_index(settings, hashing_embedder)
    assistant = Assistant(settings, hashing_embedder, overlap_scorer)
    question = "Vad är idéburet offentligt partnerskap?"
    assert assistant.search(question)[0][0].chunk.source == "iop.txt"
    token_proxy.token = "ny-nyckel"  # the gateway's key was rotated, the app still sends the old one
    said = f"Chroma-servern på {token_proxy.url} godtog inte ASSISTANT_CHROMA_TOKEN (HTTP 401); kontrollera nyckeln."
    for call in (lambda: assistant.search(question), assistant.check_store):
        with pytest.raises(ChromaServerError) as refused:
            call()
        assert str(refused.value) == said and TOKEN not in str(refused.value)
    token_proxy.token = TOKEN
    assert assistant.search(question)[0][0].chunk.source == "iop.txt"


def test_a_server_lost_behind_a_gateway_is_named_by_the_gateways_status(tiny, settings_for, hashing_embedder,
                                                                        overlap_scorer, own_chroma_server):
    gateway = TokenProxy(own_chroma_server.url, TOKEN)
    try:
        settings = settings_for(tiny, chroma_url=gateway.url, chroma_token=TOKEN)
        build_index(settings, hashing_embedder)
        assistant = Assistant(settings, hashing_embedder, overlap_scorer)
        question = "Vad är idéburet offentligt partnerskap?"
        assert assistant.search(question)[0][0].chunk.source == "iop.txt"
        own_chroma_server.stop()
        with pytest.raises(ChromaServerError) as lost:  # chromadb's plain Exception with the gateway's page
            assistant.search(question)
        assert str(lost.value) == (f"Chroma-servern på {gateway.url} svarar inte (HTTP 502); kontrollera "
                                   "ASSISTANT_CHROMA_URL och att servern körs.")
        own_chroma_server.start()
        assert assistant.search(question)[0][0].chunk.source == "iop.txt"
    finally:
        gateway.close()


class StallingProxy:
    """A TCP proxy in front of the Chroma server that, once ``stalled`` is set, still accepts connections and
    reads what is sent but passes nothing on, either way: a server that hangs, or a network that silently
    drops packets. Nothing is refused or reset, so only a timeout can end a request."""

    def __init__(self, upstream: str):
        target = urlsplit(upstream)
        self.target = (target.hostname, target.port)
        self.stalled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.stalled.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


def within(seconds: float, call):
    """``call()``'s result or exception, failing the test (instead of hanging it) when it takes longer."""
    pool = ThreadPoolExecutor(1)
    try:
        future = pool.submit(call)
        return future.exception(timeout=seconds) or future.result()
    except TimeoutError:
        pytest.fail(f"still waiting after {seconds} s")
    finally:
        pool.shutdown(wait=False)  # a call that hangs is left behind, not waited for


def test_a_server_that_stops_answering_is_named_after_the_timeout(tiny, settings_for, hashing_embedder,
                                                                  overlap_scorer, chroma_server):
    proxy = StallingProxy(chroma_server)
    try:
        settings = settings_for(tiny, chroma_url=proxy.url, chroma_timeout=1)
        build_index(settings, hashing_embedder)
        assistant = Assistant(settings, hashing_embedder, overlap_scorer)
        question = "Vad är idéburet offentligt partnerskap?"
        assert assistant.search(question)[0][0].chunk.source == "iop.txt"

        proxy.stalled.set()  # the open connections and any new one: accepted, never answered
        said = f"Chroma-servern på {proxy.url} svarar inte; kontrollera ASSISTANT_CHROMA_URL och att servern körs."
        calls = {"search": lambda: assistant.search(question), "ask": lambda: assistant.ask(question),
                 "health": assistant.check_store, "open": lambda: LoadedIndex.open(settings, hashing_embedder),
                 "build": lambda: build_index(settings, hashing_embedder)}
        for name, call in calls.items():
            started = time.monotonic()
            error = within(20, call)
            assert isinstance(error, ChromaServerError | IndexBuildError), (name, error)
            assert str(error) == said, name
            assert time.monotonic() - started < 5, name  # one request's timeout (1 s), not a wait per retry

        proxy.stalled.clear()
        assert assistant.search(question)[0][0].chunk.source == "iop.txt"  # the same client, no restart
    finally:
        proxy.close()


def test_the_timeout_is_a_setting_with_a_range():
    assert Settings().chroma_timeout == 30
    assert Settings.from_env({"ASSISTANT_CHROMA_TIMEOUT": "2.5"}).chroma_timeout == 2.5
    for bad in ("0", "601", "snart"):
        with pytest.raises(SettingsError, match="ASSISTANT_CHROMA_TIMEOUT"):
            Settings.from_env({"ASSISTANT_CHROMA_TIMEOUT": bad})


def test_a_collection_lost_while_serving_is_named_and_rebuilt(tiny, settings_for, hashing_embedder, overlap_scorer,
                                                              chroma_server):
    settings = settings_for(tiny, chroma_url=chroma_server)
    build_index(settings, hashing_embedder)
    assistant = Assistant(settings, hashing_embedder, overlap_scorer)
    question = "Vad är idéburet offentligt partnerskap?"
    assert assistant.search(question)[0][0].chunk.source == "iop.txt"
    generation = current_generation(settings.index_dir).path.name

    server_client(settings).delete_collection(SERVER_PREFIX + generation)  # the server came back without its data
    said = (f"Indexets samling ({generation}) finns inte på Chroma-servern {chroma_server}: servern har tappat "
            "sina data, eller ASSISTANT_CHROMA_URL (eller _TENANT, _DATABASE) pekar på en annan. Kör "
            "`assistant index` igen.")
    for call in (lambda: assistant.search(question), lambda: assistant.ask(question),
                 lambda: LoadedIndex.open(settings, hashing_embedder)):  # serving, and a process started now
        with pytest.raises(CollectionMissingError) as missing:
            call()
        assert str(missing.value) == said
        assert isinstance(missing.value, NoIndexError)  # an index to build again, not a server to wait for

    build_index(settings, hashing_embedder)  # what the message says: the next question is answered
    assert assistant.search(question)[0][0].chunk.source == "iop.txt"


@pytest.mark.parametrize("url", ["ftp://anna:hemligt@chroma.example:8000", "http://anna:hemligt@chroma.example:8000/v1"])
def test_a_malformed_server_url_is_named_without_its_password(url):
    with pytest.raises(ChromaServerError, match="ska se ut som http://värd:port") as refused:
        server_client(Settings(chroma_url=url))
    assert "hemligt" not in str(refused.value) and "chroma.example:8000" in str(refused.value)


def test_an_unusable_server_stops_the_build_before_the_model_loads(tiny, settings_for, token_proxy):
    assistant = Assistant(settings_for(tiny, chroma_url=token_proxy.url, chroma_token="fel-nyckel"))
    with pytest.raises(IndexBuildError, match="godtog inte ASSISTANT_CHROMA_TOKEN"):
        assistant.index()
    assert assistant._embedder is None  # no model loaded for a build that could not begin


def test_ask_names_the_refused_token_without_building_an_index(tiny, tmp_path, token_proxy):
    env = {**os.environ, "ASSISTANT_CHROMA_URL": token_proxy.url, "ASSISTANT_CHROMA_TOKEN": "fel-nyckel",
           "ASSISTANT_INDEX_DIR": str(tmp_path / "index"), "ASSISTANT_CORPUS_DIRS": str(tiny),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "assistant", "ask", "Vad är en kommun?"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.count("godtog inte ASSISTANT_CHROMA_TOKEN") == 1
    assert "Bygger indexet" not in done.stderr and "fel-nyckel" not in done.stderr
