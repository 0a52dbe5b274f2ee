"""Serve the indexed documents at /doc/<corpus number>/<source>, and nothing else on disk.

A request is served only when the resolved path lies inside the numbered corpus folder (no ``..`` or
symlink escapes) and the index manifest lists that very file: a stray file dropped into a corpus folder,
or a document removed from the index, is not served.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.convertors import Convertor, register_url_convertor

from assistant.pipeline import read_corpus_text, readable_markdown
from assistant.settings import Settings
from assistant.types import Document

ROUTE_PREFIX = "/doc"
# Corpus HTML is served but must not run scripts on the chat's origin: a sandboxed, script-free page.
_SANDBOX = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
_DOC_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:46rem;margin:1.5rem auto;"
    "padding:0 1rem;line-height:1.55;color:#1f2937}mark{background:#fde68a}table{border-collapse:collapse}"
    "td,th{border:1px solid #d1d5db;padding:.25rem .5rem}pre{white-space:pre-wrap}"
)


class _AnyPath(Convertor):
    """Starlette's "path" is ``.*``, which stops at a newline: a file name with a control character
    decoded from %0A would never reach the route (a dead link). This one matches every character."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())


def corpus_numbers(settings: Settings) -> dict[Path, int]:
    """Each corpus folder, resolved, by its position in settings.corpus_dirs (the first, if listed twice):
    resolved once for a whole listing of documents."""
    numbers: dict[Path, int] = {}
    for i, folder in enumerate(settings.corpus_dirs):
        numbers.setdefault(folder.resolve(), i)
    return numbers


def corpus_number(settings: Settings, corpus_dir: str | Path) -> int | None:
    """The position of ``corpus_dir`` in settings.corpus_dirs (compared resolved), or None."""
    return corpus_numbers(settings).get(Path(corpus_dir).resolve())


def document_url(settings: Settings, corpus_dir: str | Path, source: str, page: int | None = None,
                 quote_text: str = "") -> str | None:
    """Link to a document: the PDF opens at the page; other formats scroll to the quote (text fragment)."""
    number = corpus_number(settings, corpus_dir)
    return None if number is None else document_link(number, source, page, quote_text)


def document_link(number: int, source: str, page: int | None = None, quote_text: str = "") -> str:
    """``document_url`` for the corpus folder of that number."""
    url = f"{ROUTE_PREFIX}/{number}/{quote(source, safe='/')}"  # everything but the folder separator
    if page and source.lower().endswith(".pdf"):
        return f"{url}#page={page}"
    fragment = text_fragment(quote_text) if source.lower().endswith((".md", ".markdown", ".txt")) else ""
    return url + fragment


def text_fragment(text: str, edge_words: int = 5) -> str:
    """A ``#:~:text=start,end`` fragment: Chromium-based browsers scroll to and highlight the passage.
    Only the first and last words are used, so small rendering differences in between do not matter."""
    words = text.split()
    if len(words) < 2:
        return ""

    def enc(ws: list[str]) -> str:
        return quote(" ".join(ws), safe="")  # also encodes "," and "-", which are syntax in fragments

    if len(words) <= 2 * edge_words:
        return f"#:~:text={enc(words)}"
    return f"#:~:text={enc(words[:edge_words])},{enc(words[-edge_words:])}"


def resolve_document(settings: Settings, documents: Iterable[Document], number: int, source: str) -> Path | None:
    """The file to serve for /doc/<number>/<source>, or None when it must not be served."""
    found = find_document(settings, documents, number, source)
    return found[0] if found else None


def find_document(settings: Settings, documents: Iterable[Document], number: int,
                  source: str) -> tuple[Path, Document] | None:
    """The resolved file and its index record, when the request names an indexed corpus file."""
    if not 0 <= number < len(settings.corpus_dirs) or not source or "\x00" in source:
        return None
    root = settings.corpus_dirs[number].resolve()
    try:
        candidate = (root / source).resolve(strict=True)
    except (OSError, RuntimeError):  # missing file, symlink loop
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    relative = candidate.relative_to(root).as_posix()
    for doc in documents:
        if doc.corpus_dir and relative == doc.source and Path(doc.corpus_dir).resolve() == root:
            return candidate, doc
    return None


@functools.cache  # one shared renderer: render() keeps no state between calls
def _renderer():
    from markdown_it import MarkdownIt

    # html=False: raw HTML in a corpus file is shown as text, never executed
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    # markdown-it fills its rule caches on the first render; done here, under functools.cache's first
    # call, so two requests of the thread pool never render with a half-filled cache
    md.render("# a\n\n| a | b |\n|---|---|\n| *c* | [d](e) |\n\n- f `g`\n")
    return md


def render_markdown(body: str, title: str) -> str:
    """The page of a Markdown document; ``body`` without its front matter."""
    rendered = _renderer().render(body)
    return (
        f'<!doctype html><html lang="sv"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{_DOC_CSS}</style></head><body>{rendered}</body></html>"
    )


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def document_response(path: Path, title: str = "") -> Response:
    suffix = path.suffix.lower()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if suffix == ".pdf":
        # no CSP sandbox here: Chromium's PDF viewer refuses to run in a sandboxed document
        return FileResponse(path, media_type="application/pdf", headers=headers,
                            content_disposition_type="inline", filename=path.name)
    headers["Content-Security-Policy"] = _SANDBOX
    if suffix in {".md", ".markdown", ".txt"}:
        text = read_corpus_text(path)
        if suffix == ".txt":
            return PlainTextResponse(text, headers=headers)
        # source keys spelled out, as in the index and the quotes: "(källa: S45)" names the source
        return HTMLResponse(render_markdown(readable_markdown(text, front_matter=False), title or path.stem),
                            headers=headers)
    if suffix in {".html", ".htm"}:
        return FileResponse(path, media_type="text/html", headers=headers)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # DOCX and the like: browsers cannot show them, so offer a download
    return FileResponse(path, media_type=media, headers=headers, filename=path.name,
                        content_disposition_type="attachment")


def router(settings: Settings, documents: Callable[[], Iterable[Document]]) -> APIRouter:
    """``documents`` returns the served index's documents; it is called per request so re-indexing counts."""
    api = APIRouter()

    @api.get(ROUTE_PREFIX + "/{number}/{source:anypath}", include_in_schema=False)
    def serve_document(number: int, source: str) -> Response:
        found = find_document(settings, documents(), number, source)
        if found is None:
            raise HTTPException(status_code=404, detail="Dokumentet finns inte i det indexerade underlaget.")
        path, doc = found
        return document_response(path, doc.title)

    return api
