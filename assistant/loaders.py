"""Load Markdown, plain text, PDF, DOCX and HTML files into ``SourceDocument``s of paragraph blocks.

The format libraries (pypdf, python-docx, BeautifulSoup, PyYAML) do the parsing. We walk their output
ourselves rather than use LangChain's loaders because those drop what citations need: heading styles in
DOCX, heading paths in HTML, the exact source text of Markdown; and langchain-community is being sunset.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from assistant.types import Block, SourceDocument

# Reference lists match almost any query word for word yet answer none: they stay in the file (and the
# front matter's `sources`), out of the index.
REFERENCE_SECTIONS = re.compile(r"^(källor|källförteckning|referenser|references|sources)$", re.I)

SUPPORTED = {".md", ".markdown", ".txt", ".pdf", ".docx", ".html", ".htm"}
IGNORED_NAMES = {"readme.md", "license", "license.md"}  # notes for humans about a corpus, not content


class LoadError(Exception):
    """A file that cannot be indexed; the message (Swedish) says why and is shown to the user."""


@dataclass(frozen=True)
class CorpusFile:
    corpus_dir: Path
    path: Path

    @property
    def source(self) -> str:
        return self.path.relative_to(self.corpus_dir).as_posix()


def discover(corpus_dir: Path) -> list[CorpusFile]:
    """Supported files below ``corpus_dir``, sorted, hidden files and READMEs left out."""
    files = []
    for path in sorted(corpus_dir.rglob("*")):
        rel = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in SUPPORTED and path.name.lower() not in IGNORED_NAMES:
            files.append(CorpusFile(corpus_dir, path))
    return files


def load(file: CorpusFile) -> SourceDocument:
    path = file.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"kan inte läsas: {exc.strerror or exc}") from exc
    if not data.strip():
        raise LoadError("tom fil")
    suffix = path.suffix.lower()
    reader = {".pdf": _pdf, ".docx": _docx, ".html": _html, ".htm": _html}.get(suffix, _markdown)
    try:
        title, blocks, meta = reader(path, data)
    except LoadError:
        raise
    except Exception as exc:  # every parser has its own exceptions; the user needs the reason
        raise LoadError(f"kunde inte tolkas som {suffix.lstrip('.').upper()}: {exc}") from exc
    blocks = [b for b in blocks if b.text.strip() and not _in_reference_section(b.section)]
    if not blocks:
        raise LoadError("ingen text hittades (en skannad PDF behöver OCR först)" if suffix == ".pdf"
                        else "ingen text hittades")
    return SourceDocument(
        corpus_dir=file.corpus_dir,
        source=file.source,
        title=(str(meta.get("title") or title or path.stem)).strip(),
        sha256=hashlib.sha256(data).hexdigest(),
        blocks=blocks,
        metadata=meta,
    )


def _in_reference_section(section: str) -> bool:
    return any(REFERENCE_SECTIONS.match(part.strip()) for part in section.split(">")) if section else False


def document_text(file: CorpusFile, page: int | None = None) -> str:
    """The text a quote must appear in: the raw file for text formats, the extracted text otherwise."""
    suffix = file.path.suffix.lower()
    if suffix in {".md", ".markdown", ".txt"}:
        return file.path.read_text(encoding="utf-8", errors="replace")
    doc = load(file)
    return "\n\n".join(b.text for b in doc.blocks if page is None or b.page == page)


# --- Markdown and plain text -------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # older Swedish Windows files


def parse_front_matter(text: str) -> tuple[dict[str, Any], str]:
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise LoadError(f"felaktig YAML-front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise LoadError("front matter ska vara en YAML-mappning (nyckel: värde)")
    return _plain(meta), text[m.end():]


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    """Dates to ISO strings and lists to lists of strings: JSON- and Chroma-friendly values."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        elif isinstance(value, list):
            value = [v.isoformat() if isinstance(v, (date, datetime)) else str(v) for v in value]
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        out[str(key)] = value
    return out


def _markdown(path: Path, data: bytes) -> tuple[str, list[Block], dict[str, Any]]:
    text = _decode(data)
    meta, body = parse_front_matter(text) if path.suffix.lower() != ".txt" else ({}, text)
    if path.suffix.lower() == ".txt":
        return "", [Block(p.strip(), "") for p in re.split(r"\n\s*\n", body) if p.strip()], meta
    title = ""
    stack: list[tuple[int, str]] = []  # (level, heading) of the current section path
    blocks: list[Block] = []
    para: list[str] = []
    fenced = False

    def flush() -> None:
        if para:
            section = " > ".join(h for _, h in stack)
            blocks.append(Block("\n".join(para).strip(), section))
            para.clear()

    for line in body.split("\n"):
        if line.strip().startswith("```"):
            fenced = not fenced
            para.append(line)
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            flush()
            level, heading = len(m.group(1)), m.group(2).strip()
            if level == 1 and not title:
                title = heading  # the document title is not part of the section path
                continue
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
        elif not line.strip() and not fenced:
            flush()
        else:
            para.append(line)
    flush()
    return title, blocks, meta


# --- PDF ------------------------------------------------------------------------------------------


def _pdf(path: Path, data: bytes) -> tuple[str, list[Block], dict[str, Any]]:
    from io import BytesIO

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("PDF:en är lösenordsskyddad")
        pages = list(reader.pages)
    except PdfReadError as exc:
        raise LoadError(f"trasig PDF: {exc}") from exc
    sections = _pdf_outline(reader)
    texts = _without_running_lines([_HYPHENATED.sub(r"\1\2", page.extract_text() or "") for page in pages])
    blocks: list[Block] = []
    for number, text in enumerate(texts, start=1):
        section = ""
        for start_page, heading in sections:
            if start_page <= number:
                section = heading
        for para in re.split(r"\n\s*\n", text):
            if para.strip():
                blocks.append(Block(para.strip(), section, number))
    info = reader.metadata or {}
    title = str(info.get("/Title") or "").strip()
    return title, blocks, {}


_HYPHENATED = re.compile(r"(\w)-\n(\w)")  # "upp-\nhandling" → "upphandling" (line-end hyphenation)
_DIGITS = re.compile(r"\d+")


def _without_running_lines(pages: list[str]) -> list[str]:
    """Drop running headers and footers: a page's first or last line that recurs (digits aside, so
    "Sida 3 av 70" counts) as the first or last line of at least half of the pages (three or more)."""
    if len(pages) < 3:
        return pages

    def key(line: str) -> str:
        return _DIGITS.sub("#", " ".join(line.split()))

    def edges(text: str) -> list[int]:
        idx = [i for i, ln in enumerate(text.split("\n")) if ln.strip()]
        return sorted({idx[0], idx[-1]}) if idx else []

    counts: dict[str, int] = {}
    for text in pages:
        lines = text.split("\n")
        for k in {key(lines[i]) for i in edges(text)}:
            counts[k] = counts.get(k, 0) + 1
    running = {k for k, n in counts.items() if n >= max(3, len(pages) / 2)}
    out = []
    for text in pages:
        lines = text.split("\n")
        drop = {i for i in edges(text) if key(lines[i]) in running}
        out.append("\n".join(ln for i, ln in enumerate(lines) if i not in drop))
    return out


def _pdf_outline(reader) -> list[tuple[int, str]]:
    """Bookmarks as (first page, heading path): PDFs have no heading markup, but outlines say a lot."""
    found: list[tuple[int, str]] = []

    def walk(items, parents: list[str]) -> None:
        last: list[str] = parents
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1
            except Exception:
                continue
            last = [*parents, str(item.title).strip()]
            found.append((page, " > ".join(last)))

    try:
        walk(reader.outline, [])
    except Exception:
        return []
    return sorted(found, key=lambda x: x[0])


# --- DOCX -----------------------------------------------------------------------------------------

_DOCX_HEADING = re.compile(r"^(?:heading|rubrik)\s*(\d)$", re.I)


def _docx(path: Path, data: bytes) -> tuple[str, list[Block], dict[str, Any]]:
    from io import BytesIO

    import docx
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document: DocxDocument = docx.Document(BytesIO(data))
    except Exception as exc:
        raise LoadError(f"trasig DOCX: {exc}") from exc
    title = (document.core_properties.title or "").strip()
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            m = _DOCX_HEADING.match(style.strip())
            if style.lower() == "title":
                title = title or text
            elif m:
                level = int(m.group(1))
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, text))
            else:
                blocks.append(Block(text, " > ".join(h for _, h in stack)))
        elif isinstance(item, Table):
            section = " > ".join(h for _, h in stack)
            for row in item.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    blocks.append(Block(" | ".join(cells), section))
    return title, blocks, {}


# --- HTML -----------------------------------------------------------------------------------------

_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "dt", "dd", "tr",
                "figcaption"]


def _html(path: Path, data: bytes) -> tuple[str, list[Block], dict[str, Any]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template", "header", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for el in _iter_blocks(soup.body or soup):
        text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            level = int(el.name[1])
            if level == 1 and not stack:
                title = title or text
                continue
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
        else:
            cells = el.find_all(["td", "th"]) if el.name == "tr" else []
            if cells:
                text = " | ".join(" ".join(c.get_text(" ", strip=True).split()) for c in cells)
            blocks.append(Block(text, " > ".join(h for _, h in stack)))
    return title, blocks, {}


def _iter_blocks(root) -> Iterator:
    """Block elements in document order, outermost only (a <p> inside an <li> is the <li>'s)."""
    for el in root.find_all(_HTML_BLOCKS):
        if el.find_parent(_HTML_BLOCKS) is None:
            yield el


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
