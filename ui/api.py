"""The HTTP API beside the chat, for intranets, case-management systems and other front ends.

``POST /api/v1/search`` and ``POST /api/v1/ask`` answer with exactly the JSON of ``assistant search/ask
--json`` (ask also as server-sent events), ``GET /api/v1/documents`` lists the served documents and
``GET /api/v1/health`` says whether an index is served. The schema (``/api/v1/openapi.json``) and a docs
page (``/api/v1/docs``) cover these routes only.

Checks run cheapest first and before any parsing: API key, content type, body size (counted while
reading, so a missing or false Content-Length does not help), JSON and fields, question length, index,
a free worker. Every refusal is ``{"error": {"code", "message"}}`` with its status code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException  # what FastAPI raises; fastapi.HTTPException is a subclass

from assistant.pipeline import Assistant, ChromaServerError, CollectionMissingError, IndexMismatchError, NoIndexError
from assistant.settings import Settings
from assistant.types import Document, search_json
from ui.documents import corpus_numbers, document_link

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024  # a question, its history and options fit many times over
STREAM_STEPS = 30  # an answer streams in about this many pieces
KEEPALIVE_SECONDS = 10.0  # an SSE comment while a slow (LLM) answer is computed keeps proxies from timing out
BUSY_RETRY_AFTER = "1"  # seconds; asks take tens of milliseconds
NO_INDEX_RETRY_AFTER = "30"  # seconds; a first build takes about a minute on the shipped corpus
UNAVAILABLE_RETRY_AFTER = "10"  # seconds; a restarted Chroma server answers again within seconds
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
API_TITLE = "Samverkansassistenten API"
DESCRIPTION = """\
Frågor och svar om kommuners samverkan med sociala företag, med källor. Samma JSON som
`assistant search --json` och `assistant ask --json`. /
Questions and answers about municipalities' collaboration with social enterprises, with sources. The same
JSON as `assistant search --json` and `assistant ask --json`.

Nyckel / key: `Authorization: Bearer <nyckel>` when the server has `ASSISTANT_API_KEYS` (required when it
listens on anything but loopback). Fel / errors: `{"error": {"code", "message"}}`.
"""
STREAM_DESCRIPTION = """\
Besvara en fråga med citerade källor. / Answer a question with cited sources.

Med `Accept: text/event-stream` eller `"stream": true` kommer svaret som server-sent events /
with `Accept: text/event-stream` or `"stream": true` the answer comes as server-sent events:

- `progress`: `{"stage": "searching", "message": …}`, genast / at once;
- `answer`: `{"text": …}`, svarets delar i ordning; sammanfogade blir de `answer` /
  pieces of the answer in order, which joined give `answer`;
- `done`: hela JSON-svaret, samma som utan strömning / the full JSON answer, as without streaming;
- `error`: `{"error": {"code", "message"}}` om svaret inte kunde tas fram / if answering failed.

Rader som börjar med `:` är keep-alive-kommentarer / lines starting with `:` are keep-alive comments.
"""


def _sv_en(sv: str, en: str) -> str:
    return f"{sv} / {en}"


# --- request and response models (the schema; responses are the core's own to_json) ----------------

Mode = Literal["hybrid", "dense", "lexical"]
RequestId = str | int | None


class _Request(BaseModel):
    # strict: "5" is no number and "fråga" no list; unknown fields are typos, not options
    model_config = ConfigDict(strict=True, extra="forbid")

    question: str = Field(description=_sv_en("Frågan (inte tom).", "The question (not empty)."),
                          examples=["Får kommunen reservera en upphandling för sociala företag?"])
    history: list[str] = Field(default_factory=list, description=_sv_en(
        "Tidigare frågor i samtalet, äldst först; en följdfråga tolkas utifrån dem.",
        "Earlier questions of the conversation, oldest first; a follow-up is read in their light."))
    id: RequestId = Field(None, description=_sv_en("Skickas tillbaka oförändrat.", "Echoed back unchanged."))

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("frågan är tom / the question is empty")
        return value


class SearchRequest(_Request):
    k: int | None = Field(None, ge=1, le=100, description=_sv_en(
        "Antal träffar, 1–100 (standard ASSISTANT_TOP_K).", "Number of hits, 1–100 (default ASSISTANT_TOP_K)."))
    mode: Mode | None = Field(None, description=_sv_en(
        "Sökmetod (standard ASSISTANT_RETRIEVAL).", "Retrieval method (default ASSISTANT_RETRIEVAL)."))


class AskRequest(_Request):
    stream: bool | None = Field(None, description=_sv_en(
        "true: svar som server-sent events; utelämnat: enligt Accept-huvudet.",
        "true: answer as server-sent events; omitted: as the Accept header says."))


# Field shapes the response models share (a passage's place, the echoed request)
Source = Annotated[str, Field(description=_sv_en("Filens sökväg i korpusmappen.",
                                                 "The file's path in its corpus folder."))]
Title = Annotated[str, Field(description=_sv_en("Dokumentets titel.", "The document's title."))]
Section = Annotated[str, Field(description=_sv_en("Rubrikväg, \"Kapitel > Avsnitt\".", "Heading path."))]
Page = Annotated[int | None, Field(description=_sv_en("Sida (PDF), annars null.", "Page (PDF), else null."))]
EchoedId = Annotated[RequestId, Field(description=_sv_en("Begärans id.", "The request's id."))]
Question = Annotated[str, Field(description=_sv_en("Frågan.", "The question."))]
Timings = Annotated[dict[str, float], Field(description=_sv_en("Tidsåtgång per steg (ms).", "Time per stage (ms)."))]


class HitOut(BaseModel):
    rank: int = Field(description=_sv_en("Plats i rangordningen, från 1.", "Rank, from 1."))
    score: float = Field(description=_sv_en("Sammanvägd poäng; högre är bättre.", "Fused score; higher is better."))
    source: Source
    title: Title
    section: Section
    page: Page
    text: str = Field(description=_sv_en("Avsnittets text.", "The passage's text."))


class SearchResponse(BaseModel):
    id: EchoedId
    question: Question
    hits: list[HitOut] = Field(description=_sv_en("Träffarna, bäst först.", "The hits, best first."))
    timings_ms: Timings


class CitationOut(BaseModel):
    n: int = Field(description=_sv_en("Numret i svarets [n]-markörer.", "The number of the answer's [n] markers."))
    source: Source
    title: Title
    section: Section
    page: Page
    quote: str = Field(description=_sv_en("Ordagrant citat ur dokumentet.", "Verbatim quote from the document."))


class AskResponse(BaseModel):
    id: EchoedId
    question: Question
    answer: str = Field(description=_sv_en("Svaret med [n]-markörer, eller ett avböjande.",
                                           "The answer with [n] markers, or a refusal."))
    abstained: bool = Field(description=_sv_en("true när underlaget inte svarar.",
                                               "true when the sources do not answer."))
    citations: list[CitationOut] = Field(description=_sv_en("Källorna bakom [n].", "The sources behind [n]."))
    mode: Literal["extractive", "llm"] = Field(description=_sv_en("Hur svaret skrevs.", "How the answer was written."))
    nearest: list[HitOut] = Field(description=_sv_en("Närmaste avsnitt vid avböjande.",
                                                     "Nearest passages when refusing."))
    reason: str = Field(description=_sv_en("Varför ett avböjande är mer specifikt, annars \"\".",
                                           "Why a refusal is more specific, else \"\"."))
    notice: str = Field(description=_sv_en("Något läsaren bör veta om hur svaret togs fram (t.ex. att "
                                           "språkmodellen inte kunde nås), annars \"\".",
                                           "Something the reader should know about how the answer was made "
                                           "(e.g. the LLM failed), else \"\"."))
    confidence: float = Field(description=_sv_en("Relevansmodellens sannolikhet att den bästa meningen "
                                                  "besvarar frågan (0–1).",
                                                  "The relevance model's probability that the best sentence "
                                                  "answers the question (0–1)."))
    timings_ms: Timings


class DocumentOut(BaseModel):
    source: Source
    title: Title
    corpus: int | None = Field(description=_sv_en("Korpusmappens nummer (0 = den första).",
                                                  "The corpus folder's number (0 = the first)."))
    url: str | None = Field(description=_sv_en("Dokumentet i chatten (relativ URL).",
                                               "The document in the chat (relative URL)."))
    valid_as_of: str | None = Field(description=_sv_en("Uppgifterna avser läget detta datum.",
                                                       "The facts are as of this date."))
    last_checked: str | None = Field(description=_sv_en("Senast kontrollerat.", "Last checked."))
    valid_until: str | None = Field(description=_sv_en("Gäller till.", "Valid until."))
    chunks: int = Field(description=_sv_en("Antal avsnitt i indexet.", "Number of passages in the index."))


class DocumentsResponse(BaseModel):
    generation: str = Field(description=_sv_en("Indexgenerationen som används.", "The served index generation."))
    count: int = Field(description=_sv_en("Antal dokument.", "Number of documents."))
    documents: list[DocumentOut] = Field(description=_sv_en("Dokumenten.", "The documents."))


class HealthResponse(BaseModel):
    status: Literal["ok"] = Field(description=_sv_en("ok när ett index används.", "ok when an index is served."))
    generation: str = Field(description=_sv_en("Indexgenerationen som används.", "The served index generation."))
    documents: int = Field(description=_sv_en("Antal dokument i indexet.", "Documents in the index."))
    chunks: int = Field(description=_sv_en("Antal avsnitt i indexet.", "Passages in the index."))
    embedding_model: str = Field(description=_sv_en("Inbäddningsmodellen.", "The embedding model."))
    retrieval: str = Field(description=_sv_en("Sökmetod.", "Retrieval method."))
    answer_mode: Literal["extractive", "llm"] = Field(description=_sv_en(
        "extractive: svar ur dokumentens meningar; llm: omformulerat av en språkmodell.",
        "extractive: answers from the documents' sentences; llm: rephrased by a language model."))
    llm: str | None = Field(description=_sv_en("Språkmodellen (leverantör:modell), annars null.",
                                               "The language model (provider:model), else null."))
    version: str = Field(description=_sv_en("Programversionen.", "The software version."))


class ErrorDetail(BaseModel):
    code: str = Field(description=_sv_en("Stabil felkod, t.ex. bad_request, unauthorized, no_index, "
                                         "index_unavailable.", "Stable error code, e.g. bad_request, "
                                         "unauthorized, no_index, index_unavailable."))
    message: str = Field(description=_sv_en("Förklaring på svenska.", "Explanation (in Swedish)."))


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    said = {
        400: "Ogiltig begäran / bad request (bad_request, invalid_json)",
        401: "API-nyckel saknas eller är fel / missing or invalid API key (unauthorized)",
        413: "För stor / too large (body_too_large, question_too_long)",
        415: "Kroppen ska vara application/json / the body must be application/json (unsupported_media_type)",
        503: "Inget index, indexets Chroma-server nås inte, upptaget eller avstängt / no index, its Chroma server "
             "unreachable, busy or disabled (no_index, index_unavailable, busy, api_disabled)",
    }
    return {s: {"model": ErrorResponse, "description": said[s]} for s in statuses}


# --- errors -----------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return ApiError(400, "invalid_json", "Kroppen är inte giltig JSON.")
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    if first.get("type") == "missing" and not where:
        return ApiError(400, "bad_request", "Begäran saknar en JSON-kropp.")
    message = str(first.get("msg", "ogiltigt värde"))
    return ApiError(400, "bad_request", f"Ogiltigt värde för {where or 'kroppen'}: {message}")


def _no_index(detail: str = "") -> ApiError:
    return ApiError(503, "no_index", detail or "Inget index används ännu (det byggs kanske för första gången); "
                    "försök igen om en stund.", {"Retry-After": NO_INDEX_RETRY_AFTER})


def _index_unavailable(exc: ChromaServerError) -> ApiError:
    """The index exists but its Chroma server does not answer or refuses the token: the message names
    ASSISTANT_CHROMA_URL (or the token's setting) and the address, never a secret; one line in the log."""
    log.warning("Indexets Chroma-server kan inte användas: %s", exc)
    return ApiError(503, "index_unavailable", str(exc), {"Retry-After": UNAVAILABLE_RETRY_AFTER})


# --- who may call -----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name or "" (all interfaces): reachable from elsewhere


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyCheck:
    """Bearer keys, compared as SHA-256 digests in constant time (equal lengths, every key checked)."""

    def __init__(self, settings: Settings):
        self._digests = tuple(_digest(k) for k in settings.api_key_list)
        self.loopback = is_loopback(settings.host)

    @property
    def disabled(self) -> bool:
        """Reachable from other machines but no key configured: the API stays off (the chat does not)."""
        return not self._digests and not self.loopback

    def __call__(self, request: Request) -> None:
        if not self._digests:
            if self.loopback:
                return
            raise ApiError(503, "api_disabled", "API:t är avstängt: servern lyssnar på en adress som nås utifrån "
                           "och ASSISTANT_API_KEYS är inte satt.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "API-nyckel saknas: skicka Authorization: Bearer <nyckel>.",
                           {"WWW-Authenticate": 'Bearer realm="api"'})
        given = _digest(token.strip())
        ok = False
        for digest in self._digests:
            ok |= hmac.compare_digest(given, digest)
        if not ok:
            raise ApiError(401, "unauthorized", "Ogiltig API-nyckel.",
                           {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})


# --- before parsing: content type and body size ------------------------------------------------------


async def limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> Request:
    """The request with its body read, at most ``limit`` bytes; larger bodies stop reading at the limit."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "unsupported_media_type", "Skicka kroppen som application/json.")
    too_large = ApiError(413, "body_too_large", f"Kroppen är större än {limit} byte.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    body, original, replayed = b"".join(parts), request.receive, False

    async def receive():  # FastAPI then parses what was read; later calls (disconnects) go to the server
        nonlocal replayed
        if replayed:
            return await original()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def guarded_route(check_key: KeyCheck) -> type[APIRoute]:
    """A route class: key and body checks before FastAPI parses, and every failure in the error shape."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    check_key(request)
                    if request.method == "POST":
                        request = await limited_body(request)
                    return await handler(request)
                except ApiError as exc:
                    return exc.response()
                except RequestValidationError as exc:
                    return _validation_error(exc).response()
                except HTTPException as exc:  # FastAPI's own: a body it cannot decode (not UTF-8) is a 400
                    code = "invalid_json" if exc.status_code == 400 else "bad_request"
                    return ApiError(exc.status_code, code, "Kroppen kunde inte läsas som JSON i UTF-8.").response()
                except Exception:
                    log.exception("API request failed: %s %s", request.method, request.url.path)
                    return ApiError(500, "internal_error", "Ett oväntat fel uppstod.").response()

            return guarded

    return GuardedRoute


# --- the work: a bounded thread pool -------------------------------------------------------------------


class Workers:
    """Searches and asks run in threads (the core is synchronous); when all are busy a request is refused
    with 503 and Retry-After instead of waiting in a queue of unknown length."""

    def __init__(self, size: int):
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="api")
        self.slots = threading.BoundedSemaphore(size)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if not self.slots.acquire(blocking=False):
            raise ApiError(503, "busy", "Servern är upptagen; försök igen om en stund.",
                           {"Retry-After": BUSY_RETRY_AFTER})
        try:
            future = self.executor.submit(fn, *args, **kwargs)
        except BaseException:
            self.slots.release()
            raise
        # the slot is held while the thread works, even when the client has gone
        future.add_done_callback(lambda _: self.slots.release())
        return future


async def outcome(future: Future) -> Any:
    try:
        return await asyncio.wrap_future(future)
    except CollectionMissingError as exc:  # the index exists but its server lost the vectors: say so
        raise _no_index(str(exc)) from exc
    except NoIndexError as exc:
        raise _no_index() from exc
    except IndexMismatchError as exc:
        raise _no_index(str(exc)) from exc
    except ChromaServerError as exc:
        raise _index_unavailable(exc) from exc


# --- streaming ------------------------------------------------------------------------------------------


def pieces(text: str, steps: int = STREAM_STEPS) -> list[str]:
    """The text in about ``steps`` pieces cut before a word; joined they give the text back exactly."""
    words = re.split(r"(?<=\s)(?=\S)", text)
    size = max(1, -(-len(words) // steps))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)] if text else []


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def answer_events(future: Future, request_id: RequestId) -> AsyncIterator[str]:
    yield sse("progress", {"stage": "searching", "message": "Söker i underlaget …"})
    waiting = asyncio.ensure_future(outcome(future))
    try:
        while True:
            try:
                answer = await asyncio.wait_for(asyncio.shield(waiting), KEEPALIVE_SECONDS)
                break
            except TimeoutError:
                yield ": keep-alive\n\n"
    except ApiError as exc:
        yield sse("error", exc.body())
        return
    except Exception:
        log.exception("API ask failed while streaming")
        yield sse("error", ApiError(500, "internal_error", "Ett oväntat fel uppstod.").body())
        return
    finally:
        waiting.cancel()  # a no-op when done; a client that left stops waiting
    data = answer.to_json(request_id)
    for piece in pieces(data["answer"]):
        yield sse("answer", {"text": piece})
    yield sse("done", data)


def wants_stream(request: Request, flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return "text/event-stream" in request.headers.get("accept", "").lower()


# --- the routes -------------------------------------------------------------------------------------------


@cache
def _version() -> str:
    try:
        return metadata.version("samverkansassistenten")
    except metadata.PackageNotFoundError:
        return "0"


def _date(value: Any) -> str | None:
    return str(value)[:10] if value else None


def document_json(doc: Document, numbers: Mapping[Path, int]) -> dict[str, Any]:
    """A served document as the API lists it: no server paths, the corpus folder by its number
    (``numbers``: ui.documents.corpus_numbers, once per listing)."""
    number = numbers.get(Path(doc.corpus_dir).resolve()) if doc.corpus_dir else None
    return {
        "source": doc.source,
        "title": doc.title,
        "corpus": number,
        "url": None if number is None else document_link(number, doc.source),
        "valid_as_of": _date(doc.valid_as_of),
        "last_checked": _date(doc.last_checked),
        "valid_until": _date(doc.valid_until),
        "chunks": doc.chunks,
    }


def router(assistant: Assistant, settings: Settings | None = None, concurrency: int = 8) -> APIRouter:
    """The API routes. ``concurrency``: searches and asks at once when ASSISTANT_API_CONCURRENCY is unset
    (create_app passes the chat's limit)."""
    settings = settings or assistant.settings
    check_key = KeyCheck(settings)
    if check_key.disabled:
        log.warning("HTTP-API:t (%s) är avstängt: servern lyssnar på %s men ASSISTANT_API_KEYS är inte satt. "
                    "Chatten fungerar som vanligt.", PREFIX, settings.host)
    workers = Workers(settings.api_concurrency or concurrency)
    api = APIRouter(prefix=PREFIX, route_class=guarded_route(check_key))

    def served_generation() -> str:
        name = assistant.generation()
        if name is None:
            raise _no_index()
        return name

    def checked_text(body: _Request) -> None:
        limit = settings.max_question_chars
        for text in (body.question, *body.history):
            if len(text) > limit:
                raise ApiError(413, "question_too_long",
                               f"Frågan (eller en tidigare fråga) är längre än {limit} tecken.")

    @api.post("/search", response_model=SearchResponse, responses=_errors(400, 401, 413, 415, 503),
              summary=_sv_en("Sök avsnitt", "Search passages"),
              description=_sv_en("De avsnitt som bäst matchar frågan, som `assistant search --json`.",
                                 "The passages that best match the question, as `assistant search --json`."))
    async def search(body: SearchRequest) -> Response:
        checked_text(body)
        served_generation()
        future = workers.submit(assistant.search, body.question, k=body.k, history=body.history, mode=body.mode)
        hits, timings = await outcome(future)
        return JSONResponse(search_json(body.id, body.question, hits, timings))

    streamed = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                      "description": _sv_en("Svaret (JSON, eller server-sent events)",
                                            "The answer (JSON, or server-sent events)")}}

    @api.post("/ask", response_model=AskResponse, responses={**streamed, **_errors(400, 401, 413, 415, 503)},
              summary=_sv_en("Besvara en fråga", "Answer a question"), description=STREAM_DESCRIPTION)
    async def ask(body: AskRequest, request: Request) -> Response:
        checked_text(body)
        served_generation()
        future = workers.submit(assistant.ask, body.question, history=body.history)  # 503 busy before any stream
        if wants_stream(request, body.stream):
            return StreamingResponse(answer_events(future, body.id), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        answer = await outcome(future)
        return JSONResponse(answer.to_json(body.id))

    @api.get("/documents", response_model=DocumentsResponse, responses=_errors(401, 503),
             summary=_sv_en("Dokumenten i indexet", "The indexed documents"),
             description=_sv_en("Dokumenten som används, med länk till dem i chatten.",
                                "The served documents, with their link in the chat."))
    def documents() -> Response:
        name = served_generation()
        numbers = corpus_numbers(settings)
        listed = [document_json(d, numbers) for d in assistant.documents()]
        listed.sort(key=lambda d: (d["corpus"] is None, d["corpus"] or 0, d["source"]))
        return JSONResponse({"generation": name, "count": len(listed), "documents": listed})

    @api.get("/health", response_model=HealthResponse, responses=_errors(401, 503),
             summary=_sv_en("Status", "Health"),
             description=_sv_en("200 när ett index används (och dess Chroma-server svarar och har det), annars 503.",
                                "200 when an index is served (and its Chroma server answers and holds it), "
                                "else 503."))
    def health() -> Response:
        name = served_generation()
        try:
            assistant.check_store(name)  # the generation reported below, not a second read of CURRENT
        except ChromaServerError as exc:
            raise _index_unavailable(exc) from exc
        except CollectionMissingError as exc:  # the server answers without the index: every question would fail
            raise _no_index(str(exc)) from exc
        docs = assistant.documents()
        return JSONResponse({
            "status": "ok", "generation": name, "documents": len(docs),
            "chunks": sum(d.chunks for d in docs),
            "embedding_model": settings.model, "retrieval": settings.retrieval,
            "answer_mode": "llm" if settings.llm_provider else "extractive",
            "llm": f"{settings.llm_provider}:{settings.llm_model}" if settings.llm_provider else None,
            "version": _version(),
        })

    public = APIRouter(prefix=PREFIX)
    schema = cache(lambda: openapi_schema(api.routes))

    @public.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(schema())

    @public.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_html(schema()))

    known = {route.path: route.methods for route in [*api.routes, *public.routes] if isinstance(route, APIRoute)}

    # Last: the rest of /api/v1 answers in the error shape instead of falling through to the chat.
    @public.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                      include_in_schema=False)
    def elsewhere(request: Request) -> JSONResponse:
        allowed = known.get(request.url.path)
        if allowed:
            return ApiError(405, "method_not_allowed", f"Använd {', '.join(sorted(allowed))}.",
                            {"Allow": ", ".join(sorted(allowed))}).response()
        return ApiError(404, "not_found", "Det finns ingen sådan adress i API:t.").response()

    combined = APIRouter()
    combined.include_router(api)
    combined.include_router(public)
    return combined


# --- schema and docs page ------------------------------------------------------------------------------


def openapi_schema(routes: list) -> dict[str, Any]:
    schema = get_openapi(title=API_TITLE, version=_version(), description=DESCRIPTION, routes=routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)  # FastAPI's validation answer; ours is 400
    components = schema.setdefault("components", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(name, None)
    components["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": _sv_en("En av ASSISTANT_API_KEYS; krävs när servern nås utifrån.",
                              "One of ASSISTANT_API_KEYS; required when the server is reachable from elsewhere."),
    }}
    schema["security"] = [{"bearer": []}, {}]  # optional on loopback without keys
    return schema


def _type_name(prop: dict[str, Any]) -> str:
    """A schema type in words: "string | null", "array of HitOut", the values of an enum."""
    if "anyOf" in prop:
        return " | ".join(_type_name(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in prop["enum"])
    if prop.get("type") == "array":
        return f"array of {_type_name(prop.get('items', {}))}"
    return prop.get("type") or prop.get("$ref", "").rsplit("/", 1)[-1] or "any"


def docs_html(schema: dict[str, Any]) -> str:
    """A plain page from the schema: no script and nothing from a CDN (Swagger UI would fetch both)."""
    e = html.escape
    components = schema.get("components", {}).get("schemas", {})

    def fields_table(ref: str | None) -> str:
        model = components.get((ref or "").rsplit("/", 1)[-1], {})
        rows = []
        for name, prop in model.get("properties", {}).items():
            required = "ja / yes" if name in model.get("required", []) else ""
            rows.append(f"<tr><td><code>{e(name)}</code></td><td>{e(_type_name(prop))}</td><td>{required}</td>"
                        f"<td>{e(prop.get('description', ''))}</td></tr>")
        if not rows:
            return ""
        return ("<table><tr><th>fält / field</th><th>typ / type</th><th>krävs / required</th>"
                "<th>beskrivning / description</th></tr>" + "".join(rows) + "</table>")

    parts = []
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            body_ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                        .get("schema", {}).get("$ref"))
            ok = op.get("responses", {}).get("200", {})
            ok_ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            statuses = "".join(f"<li><code>{e(code)}</code> {e(r.get('description', ''))}</li>"
                               for code, r in op.get("responses", {}).items())
            parts.append(
                f'<section id="{e(method + path)}"><h2><code>{e(method.upper())} {e(path)}</code></h2>'
                f"<p><strong>{e(op.get('summary', ''))}</strong></p>"
                f"<pre>{e(op.get('description', ''))}</pre>"
                + (f"<h3>Begäran / request</h3>{fields_table(body_ref)}" if body_ref else "")
                + (f"<h3>Svar / response</h3>{fields_table(ok_ref)}" if ok_ref else "")
                + f"<h3>Statuskoder / status codes</h3><ul>{statuses}</ul></section>"
            )
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;"
             "line-height:1.5;color:#1f2937}table{border-collapse:collapse;margin:.5rem 0}"
             "td,th{border:1px solid #d1d5db;padding:.25rem .5rem;vertical-align:top;text-align:left}"
             "pre{white-space:pre-wrap;background:#f3f4f6;padding:.5rem}section{margin-bottom:2rem}")
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{e(API_TITLE)}</title>'
        f"<style>{style}</style></head><body><h1>{e(API_TITLE)}</h1><pre>{e(DESCRIPTION)}</pre>"
        f'<p>Schema: <a href="{PREFIX}/openapi.json">{PREFIX}/openapi.json</a> (OpenAPI {e(schema.get("openapi", ""))})'
        f"</p>{''.join(parts)}</body></html>"
    )
