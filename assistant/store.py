"""The Chroma collection of one index generation, always with the project's own embeddings.

Two deployments, one code path: by default each generation folder holds an embedded Chroma
(``PersistentClient``, nothing to configure); with ``ASSISTANT_CHROMA_URL`` the vectors live on a Chroma
server (``HttpClient``, which also speaks to distributed Chroma), one collection per generation named
``samverkan-<generation>``. Per-generation collections are what keeps the generation switch atomic for
every app process on that server: a collection is complete before CURRENT names its generation, and a
half-built one is never named.

Chroma's default embedding function downloads a model (impossible here), so every collection is opened
with ``ProjectEmbeddingFunction`` and every add/query passes vectors we computed ourselves.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np

from assistant import lean_imports
from assistant.embeddings import TextEmbedder
from assistant.settings import Settings
from assistant.types import Chunk

with lean_imports.chroma():  # without Chroma's class-creation checks (see lean_imports)
    import chromadb
    import httpx
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT
    from chromadb.config import Settings as ChromaSettings
    from chromadb.errors import AuthorizationError, ChromaAuthError, NotFoundError

log = logging.getLogger(__name__)

COLLECTION = "samverkan"  # the one collection of an embedded generation (its own database)
SERVER_PREFIX = "samverkan-"  # + generation name: a server holds every generation side by side


class ProjectEmbeddingFunction(EmbeddingFunction[Documents]):
    """Passage embeddings from our model; keeps Chroma from ever loading its downloading default."""

    def __init__(self, embedder: TextEmbedder | None = None, model: str = ""):
        self.embedder = embedder
        self.model = embedder.name if embedder else model

    def __call__(self, input: Documents) -> Embeddings:
        if self.embedder is None:
            raise RuntimeError("no embedder attached; pass vectors explicitly")
        return list(self.embedder.embed_passages(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        if self.embedder is None:
            raise RuntimeError("no embedder attached; pass vectors explicitly")
        return list(self.embedder.embed_queries(list(input)))

    @staticmethod
    def name() -> str:
        return "samverkansassistenten"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ProjectEmbeddingFunction:
        return ProjectEmbeddingFunction(model=config.get("model", ""))

    def is_legacy(self) -> bool:
        return False


_client_imported = False


def client_for(path: Path) -> chromadb.ClientAPI:
    global _client_imported
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if _client_imported:  # lean_imports patches process-wide: start-up only, not every index switch
        return chromadb.PersistentClient(path=str(path), settings=settings)
    with lean_imports.chroma():  # the first client imports its implementation
        _client_imported = True
        return chromadb.PersistentClient(path=str(path), settings=settings)


class NoIndexError(Exception):
    """No index can be served: none built yet, an incomplete generation, or its vectors gone from Chroma."""


class CollectionMissingError(NoIndexError):
    """The served generation's collection is not in Chroma (the server lost its data, or ASSISTANT_CHROMA_URL
    now names another server): only a new ``assistant index`` helps, so it is a missing index, not an
    unreachable server. The message is Swedish and shows no user:password."""


def missing_collection(generation: Path, settings: Settings | None) -> str:
    if settings is None or not settings.chroma_url:
        return f"Indexets samling ({generation.name}) finns inte i Chroma; kör `assistant index` igen."
    return (f"Indexets samling ({generation.name}) finns inte på Chroma-servern {_address(settings)[2]}: servern "
            "har tappat sina data, eller ASSISTANT_CHROMA_URL (eller _TENANT, _DATABASE) pekar på en annan. "
            "Kör `assistant index` igen.")


class ChromaServerError(ValueError):
    """The Chroma server of ``ASSISTANT_CHROMA_URL`` cannot be used as configured (malformed URL, unreachable,
    token refused, no such tenant or database), or no longer answers or accepts the token while an index is
    served (``ChunkStore``). The message is Swedish, names the setting to check and the server's address,
    never its user:password or the token."""


# what chromadb's token provider accepts (chromadb.auth.token_authn); checked here to name our variable
TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)


def _address(settings: Settings) -> tuple[str, int, str]:
    """(host, port, base URL) of ``settings.chroma_url``; the base has no user:password, so messages may show it."""
    url = urlsplit(settings.chroma_url.strip())
    if url.scheme not in ("http", "https") or not url.hostname or url.path.strip("/"):
        shown = settings.chroma_url.strip().replace(url.netloc, url.netloc.rpartition("@")[2])  # no user:password
        raise ChromaServerError(f"ASSISTANT_CHROMA_URL={shown!r} ska se ut som http://värd:port")
    port = url.port or (443 if url.scheme == "https" else 8000)
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # an IPv6 address
    return url.hostname, port, f"{url.scheme}://{host}:{port}"


def server_client(settings: Settings) -> chromadb.ClientAPI:
    """A client of the Chroma server at ``settings.chroma_url`` (single node or distributed)."""
    hostname, port, base = _address(settings)
    auth = {}
    if settings.chroma_token:
        if not set(settings.chroma_token) <= TOKEN_CHARS:
            raise ChromaServerError("ASSISTANT_CHROMA_TOKEN får bara innehålla ASCII-bokstäver, siffror och "
                                    "skiljetecken.")
        # the header Chroma's own CloudClient sends; a self-hosted server behind a proxy can check the same
        auth = {"chroma_client_auth_provider": "chromadb.auth.token_authn.TokenAuthClientProvider",
                "chroma_client_auth_credentials": settings.chroma_token,
                "chroma_auth_token_transport_header": "X-Chroma-Token"}
    # Asked before chromadb is, with a timeout: its constructor's own requests have none (see _bounded), so
    # a server that accepts and never answers is named here instead of hanging the start (only one that
    # stops answering in the moment between the two still could); and a refused token arrives from chromadb
    # as a bare ValueError, while ours names the setting.
    problem = _probe(base, settings)
    if problem:
        raise ChromaServerError(problem)
    chroma = ChromaSettings(anonymized_telemetry=False, **auth)
    tenant, database = settings.chroma_tenant or DEFAULT_TENANT, settings.chroma_database or DEFAULT_DATABASE
    try:
        # the constructor asks the server who we are and whether tenant and database exist
        client = chromadb.HttpClient(host=hostname, port=port, ssl=base.startswith("https:"), settings=chroma,
                                     tenant=tenant, database=database)
    except NotFoundError as exc:
        raise ChromaServerError(
            f"Chroma-servern på {base} har ingen tenant {tenant!r} med databasen {database!r}; kontrollera "
            "ASSISTANT_CHROMA_TENANT och ASSISTANT_CHROMA_DATABASE (de skapas av serverns administratör)."
        ) from exc
    except (AuthorizationError, ChromaAuthError) as exc:
        raise ChromaServerError(_refused(base, settings, exc.code())) from exc
    except ValueError as exc:
        # chromadb reports a refusal by a proxy, or no server at all, as a ValueError carrying the response
        # body: ask once more ourselves to learn which it was
        problem = _probe(base, settings) or (f"Chroma-servern på {base} kunde inte användas; kontrollera "
                                             "ASSISTANT_CHROMA_URL (en Chroma-server med API v2).")
        raise ChromaServerError(problem) from exc
    return _bounded(client, settings.chroma_timeout)


def _bounded(client: chromadb.ClientAPI, seconds: float) -> chromadb.ClientAPI:
    """The client with a timeout on every request it makes from now on. chromadb 1.5 offers no setting for it:
    its FastAPI client builds ``httpx.Client(timeout=None)`` (chromadb/api/fastapi.py), so a server that hangs
    or a network that drops packets silently would make a search wait forever. httpx lets a client's timeout
    be replaced; the session is chromadb's own attribute, and tests/assistant/test_store.py checks it is there."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(seconds)  # connect, each read and write, and waiting for a connection
    else:  # another chromadb: serve without the bound rather than not at all
        log.warning("Chromas HTTP-klient kunde inte ges någon tidsgräns (ASSISTANT_CHROMA_TIMEOUT gäller inte).")
    return client


def _refused(base: str, settings: Settings, status: int) -> str:
    if settings.chroma_token:
        return f"Chroma-servern på {base} godtog inte ASSISTANT_CHROMA_TOKEN (HTTP {status}); kontrollera nyckeln."
    return f"Chroma-servern på {base} kräver en nyckel (HTTP {status}); ange den i ASSISTANT_CHROMA_TOKEN."


def _unreachable(base: str, status: int | None = None) -> str:
    said = f" (HTTP {status})" if status else ""
    return f"Chroma-servern på {base} svarar inte{said}; kontrollera ASSISTANT_CHROMA_URL och att servern körs."


# what a gateway in front of Chroma answers while the server behind it is down or restarting
GATEWAY_DOWN = frozenset({502, 503, 504})
PROBE_SECONDS = 10.0  # a probe is one tiny request: it waits no longer than this, or than ASSISTANT_CHROMA_TIMEOUT


def _status(url: str, settings: Settings) -> int:
    """The status of one small GET to the server, with the token and the probe's timeout (httpx.HTTPError
    when there is no answer)."""
    headers = {"X-Chroma-Token": settings.chroma_token} if settings.chroma_token else {}
    return httpx.get(url, headers=headers, timeout=min(PROBE_SECONDS, settings.chroma_timeout)).status_code


def _probe(base: str, settings: Settings) -> str | None:
    """What makes the server unusable, asked directly: no answer (nor from behind a gateway), or the token
    refused; None if neither."""
    try:
        status = _status(f"{base}/api/v2/auth/identity", settings)
    except httpx.HTTPError:
        return _unreachable(base)
    if status in GATEWAY_DOWN:
        return _unreachable(base, status)
    return _refused(base, settings, status) if status in (401, 403) else None


def check_reachable(settings: Settings, generation: Path | None = None) -> None:
    """Raise ChromaServerError when the server of ``settings.chroma_url`` does not answer or refuses the token
    now, and CollectionMissingError when it answers without ``generation``'s collection (it lost its data, or
    the URL names another server): a health check polled while serving, one or two small requests and no
    client, so that a load balancer stops sending questions that could only fail."""
    base = _address(settings)[2]
    problem = _probe(base, settings)
    if problem:
        raise ChromaServerError(problem)
    if generation is None:
        return
    tenant = settings.chroma_tenant or DEFAULT_TENANT
    database = settings.chroma_database or DEFAULT_DATABASE
    url = (f"{base}/api/v2/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"
           f"/collections/{quote(collection_name(generation), safe='')}")
    try:  # the request chromadb's get_collection makes (chromadb/api/fastapi.py)
        status = _status(url, settings)
    except httpx.HTTPError as exc:
        raise ChromaServerError(_unreachable(base)) from exc
    if status == 404:
        raise CollectionMissingError(missing_collection(generation, settings))
    if status in GATEWAY_DOWN:
        raise ChromaServerError(_unreachable(base, status))


def collection_name(generation: Path) -> str:
    return SERVER_PREFIX + generation.name


def _client_and_name(generation: Path, settings: Settings | None) -> tuple[chromadb.ClientAPI, str]:
    if settings is not None and settings.chroma_url:
        return server_client(settings), collection_name(generation)
    return client_for(generation), COLLECTION


def drop_generation(generation: Path, settings: Settings | None) -> None:
    """Delete a generation: its server collection (if any), then its folder. The folder goes only after
    the collection, so when the server cannot be reached the next prune (it globs the folders) retries."""
    if settings is not None and settings.chroma_url:
        try:
            server_client(settings).delete_collection(collection_name(generation))
        except NotFoundError:
            pass  # never created (an embedded generation, or a build stopped before Chroma was reached)
        except Exception as exc:  # the server is down: the new generation is served anyway, the prune waits
            log.warning("Kunde inte ta bort Chroma-samlingen för %s: %s", generation.name, exc)
            return
    shutil.rmtree(generation, ignore_errors=True)


class ChunkStore:
    """Chunks and their vectors in one Chroma collection (cosine space): the generation's own embedded
    database, or its collection on the server when ``settings.chroma_url`` is set.

    ``create`` makes the collection (the indexer, for a new generation); otherwise it must exist, so a
    generation whose vectors are gone is an error rather than an empty index."""

    def __init__(self, path: Path, embedder: TextEmbedder | None, settings: Settings | None = None,
                 create: bool = False):
        self.path = path
        self.client, self.name = _client_and_name(path, settings)
        self.settings = settings
        self.base = _address(settings)[2] if settings is not None and settings.chroma_url else None
        function = ProjectEmbeddingFunction(embedder)
        with self._server(opening=True):
            if create:
                self.collection = self.client.create_collection(
                    self.name, embedding_function=function, configuration={"hnsw": {"space": "cosine"}}
                )
            else:
                self.collection = self.client.get_collection(self.name, embedding_function=function)
            # never hard-coded: an embedded Chroma allows ~5 461 records per call, a server says its own limit
            self.batch_size = self.client.get_max_batch_size()

    @contextmanager
    def _server(self, opening: bool = False) -> Iterator[None]:
        """The one place that knows how chromadb's HttpClient fails when its server went away (stopped,
        network, no answer within ASSISTANT_CHROMA_TIMEOUT) or stopped accepting the token after the client
        was made: each such failure becomes a ChromaServerError naming the setting and the address. Nothing
        is cached about it: the client's connection pool simply connects again on the next call, so a server
        that is back just works. A collection gone from a server that answers is a CollectionMissingError,
        except while ``opening``: there its NotFoundError is the caller's to judge (the indexer then
        rebuilds instead of copying, LoadedIndex.open says the same as serving does)."""
        if self.base is None:  # embedded: nothing to reach
            yield
            return
        try:
            yield
        except httpx.TransportError as exc:  # refused, reset, timed out: passed through by chromadb unwrapped
            raise ChromaServerError(_unreachable(self.base)) from exc
        except NotFoundError as exc:  # the server came back without its data, or is another server
            if opening:
                raise
            raise CollectionMissingError(missing_collection(self.path, self.settings)) from exc
        except (AuthorizationError, ChromaAuthError) as exc:  # Chroma's own auth refused the token
            raise ChromaServerError(_refused(self.base, self.settings, exc.code())) from exc
        except Exception as exc:
            # exactly Exception, nothing more specific: how chromadb raises an HTTP error whose body is not
            # Chroma's (base_http_client._raise_chroma_error), e.g. a gateway's 401 page or its 502 while the
            # server behind it is down. Asked directly, the server says which; anything else is not ours.
            problem = _probe(self.base, self.settings) if type(exc) is Exception else None
            if problem is None:
                raise
            raise ChromaServerError(problem) from exc

    def count(self) -> int:
        with self._server():
            return self.collection.count()

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        ids, documents, metadatas = [c.id for c in chunks], [c.text for c in chunks], [_to_meta(c) for c in chunks]
        with self._server():
            for start in range(0, len(ids), self.batch_size):
                end = start + self.batch_size
                self.collection.add(ids=ids[start:end], embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                                    documents=documents[start:end], metadatas=metadatas[start:end])

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._server():
            for start in range(0, len(ids), self.batch_size):
                got = self.collection.get(ids=ids[start : start + self.batch_size], include=["embeddings"])
                for id_, vec in zip(got["ids"], got["embeddings"], strict=True):
                    out[id_] = np.asarray(vec, dtype=np.float32)
        return out

    def get(self, ids: list[str]) -> dict[str, Chunk]:
        """The chunks of these ids (text and metadata, no vectors), by id."""
        out: dict[str, Chunk] = {}
        with self._server():
            for start in range(0, len(ids), self.batch_size):
                got = self.collection.get(ids=ids[start : start + self.batch_size],
                                          include=["documents", "metadatas"])
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                    out[i] = _from_meta(i, d, m)
        return out

    def chunks(self) -> list[Chunk]:
        chunks = [_from_meta(i, d, m) for got in self._pages(["documents", "metadatas"])
                  for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]
        return sorted(chunks, key=lambda c: (c.corpus_dir, c.source, c.position))

    def _pages(self, include: list) -> Iterator[Any]:
        """The whole collection in pages: one response of a large index from a server would be huge."""
        total = self.count()
        for offset in range(0, total, self.batch_size):
            with self._server():
                page = self.collection.get(include=include, limit=self.batch_size, offset=offset)
            yield page

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first."""
        n = min(n, self.count())
        if n <= 0:
            return []
        with self._server():
            res = self.collection.query(
                query_embeddings=np.asarray([vector], dtype=np.float32), n_results=n, include=["distances"]
            )
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)]


def _to_meta(c: Chunk) -> dict[str, Any]:
    return {
        "source": c.source,
        "corpus_dir": c.corpus_dir,
        "title": c.title,
        "section": c.section,
        "page": c.page if c.page is not None else -1,  # Chroma metadata has no null
        "position": c.position,
        "doc_meta": json.dumps(c.metadata, ensure_ascii=False),
    }


def _from_meta(id_: str, text: str, m: dict[str, Any]) -> Chunk:
    page = int(m.get("page", -1))
    return Chunk(
        id=id_,
        text=text,
        source=str(m["source"]),
        corpus_dir=str(m["corpus_dir"]),
        title=str(m.get("title", "")),
        section=str(m.get("section", "")),
        page=page if page >= 0 else None,
        position=int(m.get("position", 0)),
        metadata=json.loads(m.get("doc_meta") or "{}"),
    )
