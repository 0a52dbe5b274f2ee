"""Load Markdown, plain text, PDF, DOCX and HTML files into ``SourceDocument``s of paragraph blocks.

The format libraries (pypdf, python-docx, BeautifulSoup, markdown-it-py, PyYAML) do the parsing. We walk their output
ourselves rather than use LangChain's loaders because those drop what citations need: heading styles in
DOCX, heading paths in HTML, the exact source text of Markdown; and langchain-community is being sunset.
"""

from __future__ import annotations

import codecs
import errno
import functools
import hashlib
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from assistant.types import Block, SkippedFile, SourceDocument

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Limits:
    """Per-file limits (see the Settings fields of the same names for the defaults and why)."""

    max_file_bytes: int
    max_chars: int
    max_unzipped_bytes: int
    max_zip_entries: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_file_bytes, settings.max_chars, settings.max_unzipped_bytes,
                   settings.max_zip_entries)

    @classmethod
    def from_env(cls) -> Limits:
        from assistant.settings import Settings

        return cls.from_settings(Settings.from_env())


# --- discovery ------------------------------------------------------------------------------------

SYMLINK_REASON = "symbolisk länk – följs inte (den kan peka utanför korpusmappen); lägg in själva filen"


@dataclass
class Discovery:
    files: list[CorpusFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)  # reported, never indexed


def scan(corpus_dir: Path) -> Discovery:
    """Supported files below ``corpus_dir``, sorted; hidden files and READMEs left out silently.

    Symbolic links (to files or folders) are never followed: a link can point anywhere on the machine
    (``ln -s /etc/passwd corpus/passwd.txt``), and the index would publish what it points to. Names with
    control characters or that are not UTF-8 break reports, links and logs. Both are skipped with a
    reason, so the editor sees why a file is missing.
    """
    found = Discovery()

    def walk(folder: Path) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            found.skipped.append(SkippedFile(_printable(_relative(folder, corpus_dir)) + "/",
                                             f"mappen kan inte läsas: {exc.strerror or exc}"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            source = _relative(path, corpus_dir)
            wanted = _supported(entry.name)
            try:
                if entry.is_symlink():
                    if wanted or entry.is_dir():  # a link to a document or to a folder (that may hold some)
                        found.skipped.append(SkippedFile(_printable(source), SYMLINK_REASON))
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if not (is_dir or (is_file and wanted)):
                continue
            problem = _name_problem(entry.name)
            if problem:
                found.skipped.append(SkippedFile(_printable(source) + ("/" if is_dir else ""), problem))
            elif is_dir:
                walk(path)
            else:
                found.files.append(CorpusFile(corpus_dir, path))

    walk(corpus_dir)
    found.files.sort(key=lambda f: f.path)
    return found


def discover(corpus_dir: Path) -> list[CorpusFile]:
    """The files :func:`scan` finds, without the skipped ones."""
    return scan(corpus_dir).files


def _supported(name: str) -> bool:
    return Path(name).suffix.lower() in SUPPORTED and name.lower() not in IGNORED_NAMES


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# line and paragraph separators and bidirectional overrides (which can disguise a name) count as control
_INVISIBLE_CONTROLS = set("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _name_problem(name: str) -> str | None:
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):  # os.fsdecode's escapes for undecodable bytes
        return "filnamnet är inte giltig UTF-8 – byt namn på filen"
    if any(unicodedata.category(c) == "Cc" or c in _INVISIBLE_CONTROLS for c in name):
        return "filnamnet innehåller styrtecken (t.ex. radbrytning) – byt namn på filen"
    return None


def _printable(name: str) -> str:
    """A name safe to show on one line: control characters and undecodable bytes as escapes."""
    out = []
    for c in name:
        if 0xDC80 <= ord(c) <= 0xDCFF:
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif unicodedata.category(c) == "Cc" or c in _INVISIBLE_CONTROLS:
            out.append(c.encode("unicode_escape").decode("ascii"))
        else:
            out.append(c)
    return "".join(out)


# --- reading --------------------------------------------------------------------------------------


def read_bytes(file: CorpusFile, limits: Limits) -> bytes:
    """The file's bytes, refusing what discovery refuses even if the file changed since: a symlink (also
    a folder on the way that became one), anything but a regular file, and a file over the byte limit,
    which is checked from the open file's size before anything is read."""
    path = file.path
    try:
        inside = path.parent.resolve().is_relative_to(file.corpus_dir.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise LoadError(SYMLINK_REASON)
    # O_NOFOLLOW: a symlink fails to open (ELOOP); O_NONBLOCK: a FIFO put in its place cannot hang the build
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError(SYMLINK_REASON) from exc
        raise LoadError(f"kan inte läsas: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise LoadError("inte en vanlig fil")
        if info.st_size > limits.max_file_bytes:
            raise LoadError(_too_big("filen", info.st_size, limits.max_file_bytes, "MAX_FILE_BYTES"))
        data = handle.read(limits.max_file_bytes + 1)  # the file may grow while we read
    if len(data) > limits.max_file_bytes:
        raise LoadError(_too_big("filen", len(data), limits.max_file_bytes, "MAX_FILE_BYTES"))
    return data


def _too_big(what: str, size: int, limit: int, variable: str) -> str:
    return (f"{what} är för stor: {_megabytes(size)}, gränsen är {_megabytes(limit)} "
            f"(ändra med ASSISTANT_{variable})")


def _megabytes(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB".replace(".", ",")
    return f"{n / 1000:.1f} kB".replace(".", ",") if n >= 1000 else f"{n} byte"


def _too_many_chars(limits: Limits) -> LoadError:
    return LoadError(f"för mycket text: mer än {limits.max_chars:_} tecken".replace("_", " ")
                     + " (ändra med ASSISTANT_MAX_CHARS)")


def load(file: CorpusFile, limits: Limits | None = None, data: bytes | None = None) -> SourceDocument:
    """Parse one corpus file. Every failure, over-limit files included, is a LoadError with the reason.
    ``data`` is the file's content when the caller has read it already (with :func:`read_bytes`)."""
    limits = limits or Limits.from_env()
    path = file.path
    if data is None:
        data = read_bytes(file, limits)
    if not data or data.isspace():  # isspace() stops at the first other byte; strip() would copy
        raise LoadError("tom fil")
    suffix = path.suffix.lower()
    reader = {".pdf": _pdf, ".docx": _docx, ".html": _html, ".htm": _html}.get(suffix, _markdown)
    try:
        title, blocks, meta = reader(path, data, limits)
    except LoadError:
        raise
    except RecursionError as exc:  # deeply nested markup or YAML
        raise LoadError(f"kunde inte tolkas som {suffix.lstrip('.').upper()}: för djupt nästlad") from exc
    except Exception as exc:  # every parser has its own exceptions; the user needs the reason
        raise LoadError(f"kunde inte tolkas som {suffix.lstrip('.').upper()}: {exc}") from exc
    blocks = [Block(_clean(b.text), _clean(b.section), b.page) for b in blocks]
    blocks = [b for b in blocks if b.text.strip() and not _in_reference_section(b.section)]
    if not blocks:
        raise LoadError("ingen text hittades (en skannad PDF behöver OCR först)" if suffix == ".pdf"
                        else "ingen text hittades")
    if sum(len(b.text) for b in blocks) > limits.max_chars:
        raise _too_many_chars(limits)
    return SourceDocument(
        corpus_dir=file.corpus_dir,
        source=file.source,
        title=_clean(str(meta.get("title") or title or path.stem)).strip(),
        sha256=hashlib.sha256(data).hexdigest(),
        blocks=blocks,
        metadata=meta,
    )


_SURROGATES = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Lone surrogates (from broken PDF text maps) cannot be written as UTF-8: JSON, Chroma and the
    manifest would fail on them. Decoded text files never contain any, so quotes stay verbatim."""
    return _SURROGATES.sub("\ufffd", text) if text else text


def _in_reference_section(section: str) -> bool:
    return any(REFERENCE_SECTIONS.match(part.strip()) for part in section.split(">")) if section else False


# An answer quotes one file several times and the evaluation checks every quote: the bytes are read (and
# checked) each time, the Markdown parse is done once per content.
@functools.lru_cache(maxsize=32)
def _readable_markdown_cached(text: str) -> str:
    return readable_markdown(text)


def document_text(file: CorpusFile, page: int | None = None, limits: Limits | None = None) -> str:
    """The text a quote must appear in: the file's text for text formats, the extracted text otherwise.
    Text files are decoded exactly as :func:`load` decodes them, so an indexed sentence is always found."""
    limits = limits or Limits.from_env()
    suffix = file.path.suffix.lower()
    if suffix == ".txt":
        return decode_text(read_bytes(file, limits))
    if suffix in {".md", ".markdown"}:  # with the source keys spelled out, as indexed
        return _readable_markdown_cached(decode_text(read_bytes(file, limits)))
    doc = load(file, limits)
    return "\n\n".join(b.text for b in doc.blocks if page is None or b.page == page)


# --- Markdown and plain text -------------------------------------------------------------------

# A valid UTF-8 sequence of two to four bytes (RFC 3629: no overlongs, no surrogates).
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def decode_text(data: bytes) -> str:
    """Text files as UTF-8, an invalid byte becoming U+FFFD on its own (the rest of the file stays right).

    Only a file with no valid UTF-8 multibyte sequence at all that decodes as cp1252 is read as cp1252:
    there every å, ä and ö is a single high byte, which is what older Swedish Windows files look like, and
    UTF-8 would turn each of them into U+FFFD. One valid "ö" (C3 B6) shows the file was written as UTF-8,
    and then a stray byte must not turn the whole file into mojibake. A UTF-16 file carries its BOM.
    Used both for indexing and for checking quotes (:func:`document_text`), so quotes stay verbatim.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if not _UTF8_MULTIBYTE.search(data):
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8d, ...): not cp1252 either
            pass
    return data.decode("utf-8-sig", errors="replace")


# Front matter is metadata (title, dates, a list of sources): a few hundred bytes. The cap bounds the
# YAML parser's work and what every chunk of the file carries into the index.
MAX_FRONT_MATTER_CHARS = 64 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """yaml's safe loader, refusing aliases (``*name``): nested aliases expand exponentially (a 329-byte
    file became a 39 MB manifest). Without them the parsed value is no bigger than its text."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "alias (*namn) är inte tillåtna i front matter", event.start_mark)
        return super().compose_node(parent, index)


@functools.cache  # one shared parser: parse() keeps no state between calls
def _markdown_parser():
    """markdown-it-py (CommonMark, GFM tables, YAML front matter) for the block structure only: the inline
    rule is off, so heading text stays as written and inline syntax costs no time."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.front_matter import front_matter_plugin

    md = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
    md.core.ruler.disable("inline")
    return md


# markdown-it's own line breaks (it turns \r\n and \r into \n): its token line numbers count these
_LINE_BREAK = re.compile(r"(\r\n?|\n)")


def _split_lines(text: str) -> tuple[list[str], list[str]]:
    """The lines as markdown-it numbers them, and the break after each ("" after the last one)."""
    parts = _LINE_BREAK.split(text)
    return parts[0::2], [*parts[1::2], ""]


def _front_matter(tokens: list) -> tuple[dict[str, Any], int]:
    """The parsed front matter and the number of its lines (0 without front matter)."""
    if not tokens or tokens[0].type != "front_matter":
        return {}, 0
    content = tokens[0].content
    if len(content) > MAX_FRONT_MATTER_CHARS:
        raise LoadError(f"front matter är för stor (mer än {MAX_FRONT_MATTER_CHARS // 1024} kB)")
    try:
        meta = yaml.load(content, Loader=_NoAliasLoader) or {}  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise LoadError(f"felaktig YAML-front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise LoadError("front matter ska vara en YAML-mappning (nyckel: värde)")
    return _plain(meta), tokens[0].map[1]


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


# --- source keys --------------------------------------------------------------------------------
# The corpus notes its sources as keys, "(källa: S45)", listed in the file's "Källor" section
# ("- S45 – Upphandlingsmyndigheten, reserverad upphandling") and in the front matter's `sources`
# ("S45 – upphandlingsmyndigheten.se/…"). A reader cannot follow a key, so the loader spells each note
# out with the source's name, preferring the Källor list (names) over the front matter (addresses, which
# stay in the metadata). The text the index, the quote check and the document view read is the same
# resolved text, so quotes stay verbatim. A key that resolves nowhere stays as written and is logged.

_KEY = r"S\d+[a-z]?"
_KEYS = rf"{_KEY}(?:\s*(?:,|och|[–—-])\s*{_KEY})*"  # "S45", "S45, S46", "S45 och S92", "S57–S58"
_SOURCE_ENTRY = re.compile(rf"({_KEYS})\s+[–—-]\s+(\S.*)")
_KEY_RANGE = re.compile(r"S(\d+)\s*[–—-]\s*S(\d+)")
_NOTE = re.compile(r"\((källa|källor)(:\s*)([^()\n]*)\)", re.I)
_TABLE_CELL = re.compile(r"(?<=\|)([^|\n]*)(?=\|)")
_NOTE_PARTS = re.compile(r"\s*[,;]\s*")
MAX_KEY_RANGE = 100  # "S1–S999999999" must not become a billion lookups


def _keys(expression: str) -> list[str] | None:
    """The single keys an expression names ("S70–S72" → S70, S71, S72), or None if it is not one."""
    keys: list[str] = []
    for part in re.split(r"\s*(?:,|\boch\b)\s*", expression.strip()):
        span = _KEY_RANGE.fullmatch(part)
        if span:
            low, high = int(span[1]), int(span[2])
            if not 0 <= high - low <= MAX_KEY_RANGE:
                return None
            keys.extend(f"S{n}" for n in range(low, high + 1))
        elif re.fullmatch(_KEY, part):
            keys.append(part)
        else:
            return None
    return keys


def _key_id(expression: str) -> str:
    return re.sub(r"\s+", "", expression).replace("—", "–").replace("-", "–")


def _source_names(entries: list[str]) -> dict[str, str]:
    """Key → what stands after the dash; a group entry ("S45, S46 – …") also names each of its keys,
    unless a key has an entry of its own."""
    names: dict[str, str] = {}
    groups: list[tuple[list[str], str]] = []
    for entry in entries:
        m = _SOURCE_ENTRY.fullmatch(" ".join(entry.split()))
        keys = _keys(m[1]) if m else None
        if not m or not keys:
            continue
        name = m[2].strip()
        names.setdefault(_key_id(m[1]), name)
        if len(keys) > 1:
            groups.append((keys, name))
    for keys, name in groups:
        for key in keys:
            names.setdefault(key, name)
    return names


def _resolve_keys(text: str, names: dict[str, str], unknown: set[str]) -> str | None:
    """ "S45, S44" → "name of S45; name of S44"; None when nothing resolves (the text then stays)."""
    out: list[str] = []
    resolved = False
    for part in _NOTE_PARTS.split(text.strip()):
        keys = _keys(part)
        if _key_id(part) in names:  # as listed, "S57–S58" too
            out.append(names[_key_id(part)])
        elif keys and all(k in names for k in keys):
            out.extend(names[k] for k in keys)
        else:
            if keys:
                unknown.add(part)
            out.append(part)
            continue
        resolved = True
    return "; ".join(dict.fromkeys(out)) if resolved else None


def _resolve_line(line: str, names: dict[str, str], unknown: set[str], table_row: bool = False) -> str:
    def note(m: re.Match) -> str:
        resolved = _resolve_keys(m[3], names, unknown)
        return m[0] if resolved is None else f"({m[1]}{m[2]}{resolved})"

    def cell(m: re.Match) -> str:  # a table column of sources: cells that hold keys and nothing else
        value = m[1].strip()
        if not value or not all(_keys(p) for p in _NOTE_PARTS.split(value)):
            return m[1]
        resolved = _resolve_keys(value, names, unknown)
        return m[1] if resolved is None else m[1].replace(value, resolved, 1)

    if "(" in line:
        line = _NOTE.sub(note, line)
    if table_row and "|" in line:
        line = _TABLE_CELL.sub(cell, line)
    return line


@dataclass
class _ParsedMarkdown:
    tokens: list
    lines: list[str]  # source keys resolved; as many as markdown-it counts, so token maps index them
    breaks: list[str]
    meta: dict[str, Any]
    names: dict[str, str]
    unknown: set[str]
    front_matter_lines: int = 0  # of a valid front matter; a broken one counts as text

    @property
    def text(self) -> str:
        return "".join(line + brk for line, brk in zip(self.lines, self.breaks, strict=True))

    @property
    def body(self) -> str:
        start = self.front_matter_lines
        return "".join(line + brk for line, brk in zip(self.lines[start:], self.breaks[start:], strict=True))


def _parse_markdown(text: str, strict: bool = True) -> _ParsedMarkdown:
    """``strict``: a bad front matter is a LoadError (indexing) rather than no front matter (display)."""
    tokens = _markdown_parser().parse(text)
    lines, breaks = _split_lines(text)
    try:
        meta, body_start = _front_matter(tokens)
        front_matter_lines = body_start
    except LoadError:
        if strict:
            raise
        meta, body_start, front_matter_lines = {}, tokens[0].map[1], 0
    listed = meta.get("sources")
    entries = _reference_entries(tokens) + ([str(s) for s in listed] if isinstance(listed, list)
                                            else [str(listed)] if listed else [])
    names = _source_names(entries)
    table_rows = {i for t in tokens if t.type == "table_open" and t.map for i in range(*t.map)}
    unknown: set[str] = set()
    for i in range(body_start, len(lines)):
        lines[i] = _resolve_line(lines[i], names, unknown, i in table_rows)
    return _ParsedMarkdown(tokens, lines, breaks, meta, names, unknown, front_matter_lines)


def _reference_entries(tokens: list) -> list[str]:
    """The lines of the reference sections (Källor, Referenser …): there the keys are given names."""
    entries: list[str] = []
    level = 0  # the reference section's heading level, 0 outside one
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            this = int(tok.tag[1])
            heading = " ".join(tokens[i + 1].content.split())
            if REFERENCE_SECTIONS.match(heading):
                level = this
            elif level and this <= level:
                level = 0
        elif level and tok.type == "inline" and tokens[i - 1].type != "heading_open":
            entries.extend(tok.content.split("\n"))
    return entries


def readable_markdown(text: str, front_matter: bool = True) -> str:
    """The Markdown file as the index holds it and the reader sees it: source keys spelled out (see
    above), everything else as written. The quote check and the document view read this; the view
    without the front matter (``front_matter=False``), unless it is broken: the raw text is still worth
    showing."""
    parsed = _parse_markdown(text, strict=False)
    return parsed.text if front_matter else parsed.body


_WHOLE_BLOCKS = {"fence", "code_block", "html_block"}  # kept whole: blank lines are part of them


def _markdown(path: Path, data: bytes, limits: Limits) -> tuple[str, list[Block], dict[str, Any]]:
    if len(data) > 4 * limits.max_chars:  # even at 4 bytes a character: too much, no need to decode it
        raise _too_many_chars(limits)
    text = decode_text(data)
    if len(text) > limits.max_chars:
        raise _too_many_chars(limits)
    if path.suffix.lower() == ".txt":
        return "", [Block(p.strip(), "") for p in re.split(r"\n\s*\n", text) if p.strip()], {}
    parsed = _parse_markdown(text)
    if parsed.unknown:
        log.warning("%s: källnycklar utan källa i filen står kvar som de är: %s", path,
                    ", ".join(sorted(parsed.unknown)))
    tokens, lines = parsed.tokens, parsed.lines
    title = ""
    stack: list[tuple[int, str]] = []  # (level, heading) of the current section path
    blocks: list[Block] = []
    for i, tok in enumerate(tokens):
        # top-level blocks only: a list's paragraphs and a quote's headings belong to the list or quote
        if tok.level != 0 or tok.map is None or tok.nesting == -1 or tok.type in {"front_matter", "hr"}:
            continue
        if tok.type == "heading_open":  # ATX (#) and setext (underlined) alike
            heading = " ".join(_resolve_line(tokens[i + 1].content, parsed.names, set()).split())
            level = int(tok.tag[1])
            if not heading:
                continue
            if level == 1 and not title:
                title = heading  # the document title is not part of the section path
                continue
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
            continue
        section = " > ".join(h for _, h in stack)
        source = lines[tok.map[0]:tok.map[1]]
        if tok.type in _WHOLE_BLOCKS:
            parts = ["\n".join(source)]
        else:  # a list or quote with blank lines: one block per paragraph, as a table's rows stay one
            parts = re.split(r"\n\s*\n", "\n".join(source))
        blocks.extend(Block(p.strip(), section) for p in parts if p.strip())
    return title, blocks, parsed.meta


# --- PDF ------------------------------------------------------------------------------------------


def _pdf(path: Path, data: bytes, limits: Limits) -> tuple[str, list[Block], dict[str, Any]]:
    from io import BytesIO

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf bounds each decompressed stream itself (75 MB); the text limit is checked page by page, so an
    # oversized PDF stops at the first page past it.
    try:
        reader = PdfReader(BytesIO(data))
        # an empty user password (AES or RC4) only restricts editing: such PDFs open without a password
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("PDF:en är lösenordsskyddad (spara den utan lösenord och lägg in den igen)")
        pages = list(reader.pages)
        raw: list[str] = []
        total = 0
        for page in pages:
            raw.append(page.extract_text() or "")
            total += len(raw[-1])
            if total > limits.max_chars:
                raise _too_many_chars(limits)
    except PdfReadError as exc:
        raise LoadError(f"trasig PDF: {exc}") from exc
    sections = _pdf_outline(reader)
    texts = _without_running_lines([_join_hyphenated(text) for text in raw])
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
# A Swedish suspended hyphen ends a compound's first part before a conjunction: "social- och
# arbetsmarknadsnämnden", "hälso- och sjukvård", "för- eller nackdelar". Broken after it, the hyphen is
# the word's own and the line break a space.
_SUSPENDED = re.compile(r"(\w)-\n(?=(?:och|eller|samt|till|som)\b)")


def _join_hyphenated(text: str) -> str:
    return _HYPHENATED.sub(r"\1\2", _SUSPENDED.sub(r"\1- ", text))
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


# Apache POI's ZipSecureFile defaults: Office XML compresses ~10:1; a part past 100:1 is a bomb.
MAX_ZIP_RATIO = 100
MAX_ZIP_RATIO_FROM = 1024 * 1024  # small parts (styles, settings) may compress better; they are harmless


def check_zip(data: bytes, limits: Limits, kind: str = "DOCX") -> None:
    """Refuse a zip bomb from the zip directory alone, before anything is decompressed: the declared
    sizes bound what is unpacked (Python's zipfile stops an entry at its declared size and then fails its
    CRC check), and the entry count bounds the parts a parser creates."""
    import zipfile
    from io import BytesIO

    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise LoadError(f"trasig {kind}: {exc}") from exc
    if len(entries) > limits.max_zip_entries:
        raise LoadError(f"{kind}-filen har för många delar: {len(entries)}, gränsen är {limits.max_zip_entries} "
                        f"(ändra med ASSISTANT_MAX_ZIP_ENTRIES)")
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > limits.max_unzipped_bytes:
        raise LoadError(_too_big(f"{kind}-filen uppackad", unpacked, limits.max_unzipped_bytes,
                                 "MAX_UNZIPPED_BYTES"))
    for entry in entries:
        if entry.file_size > MAX_ZIP_RATIO_FROM and entry.file_size > MAX_ZIP_RATIO * max(entry.compress_size, 1):
            raise LoadError(f"{kind}-filen ser ut som en zip-bomb: delen {_printable(entry.filename)} packas upp "
                            f"{entry.file_size // max(entry.compress_size, 1)} gånger större än den lagras")


def _docx(path: Path, data: bytes, limits: Limits) -> tuple[str, list[Block], dict[str, Any]]:
    from io import BytesIO

    import docx
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip(data, limits)
    try:
        document: DocxDocument = docx.Document(BytesIO(data))
    except Exception as exc:
        raise LoadError(f"trasig DOCX: {exc}") from exc
    title = (document.core_properties.title or "").strip()
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    total = 0  # characters so far: a document past the text limit stops here, not after its last page
    for item in document.iter_inner_content():
        if total > limits.max_chars:
            raise _too_many_chars(limits)
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
                total += len(text)
        elif isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells = row.cells  # a merged cell is repeated once per grid column it spans: kept once
                rows.append([c.text for i, c in enumerate(cells) if i == 0 or c._tc is not cells[i - 1]._tc])
                total += sum(len(c) for c in rows[-1])
                if total > limits.max_chars:
                    raise _too_many_chars(limits)
            blocks.extend(_table_blocks(rows, " > ".join(h for _, h in stack)))
    return title, blocks, {}


def _table_blocks(rows: list[list[str]], section: str) -> list[Block]:
    """A DOCX or HTML table as one Markdown table, its first row the header. The chunker then treats it as
    it does a Markdown file's table: split by whole rows, each part under the header, so a row never
    reaches the models or a reader without its column names, and no row is quoted as an answer sentence.
    A table of one row or one column is layout, not data: its cells become paragraphs."""
    rows = [[" ".join(c.split()) for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    width = max((len(row) for row in rows), default=0)
    if len(rows) < 2 or width < 2:
        return [Block(cell, section) for row in rows for cell in row if cell]

    def line(cells: list[str]) -> str:
        cells = [c.replace("|", "\\|") for c in cells] + [""] * (width - len(cells))
        return "| " + " | ".join(cells) + " |"

    text = "\n".join([line(rows[0]), "|" + " --- |" * width] + [line(row) for row in rows[1:]])
    return [Block(text, section)]


# --- HTML -----------------------------------------------------------------------------------------

_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "dt", "dd", "table",
                "tr", "figcaption"]


def _html(path: Path, data: bytes, limits: Limits) -> tuple[str, list[Block], dict[str, Any]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template", "header", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    _unwrap_layout_tables(soup)
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
            continue
        where = " > ".join(h for _, h in stack)
        if el.name == "table":  # a data table: a table in a cell made it layout (_unwrap_layout_tables)
            caption = el.find("caption")
            if caption is not None and caption.get_text(strip=True):
                blocks.append(Block(" ".join(caption.get_text(" ", strip=True).split()), where))
            # the ";" that _unwrap_layout_tables put after a cell's list items, without the space before it
            rows = [[re.sub(r"(\s*;)+", ";", c.get_text(" ", strip=True)) for c in tr.find_all(["td", "th"])]
                    for tr in el.find_all("tr")]
            blocks.extend(_table_blocks(rows, where))
        else:
            cells = el.find_all(["td", "th"]) if el.name == "tr" else []  # a row outside any table
            if cells:
                text = " | ".join(" ".join(c.get_text(" ", strip=True).split()) for c in cells)
            blocks.append(Block(text, where))
    return title, blocks, {}


_LAYOUT_MARKERS = ["h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre"]
_CELL_BLOCKS = ["ul", "ol", "dl"]  # layout, unless the table has a header row over a regular grid


def _own(table, names: list[str]) -> list:
    return [el for el in table.find_all(names) if el.find_parent("table") is table]


def _unwrap_layout_tables(soup) -> None:
    """A table that lays out a page (a cell holds a heading, a table or a long text; or a list or several
    paragraphs when no header row of <th> sits over a regular grid: older municipal sites are built so) is
    not data: its cells are read as the page's own blocks. Innermost first, so a data table inside a layout
    cell stays a table. A data table's cells may hold one paragraph each (Word's HTML does), so one <p> is
    no sign of layout; a data cell's list items and paragraphs get a ";" here, so the cell reads "a; b"."""
    for table in reversed(soup.find_all("table")):
        cells = _own(table, ["td", "th"])
        strong = any(c.find(_LAYOUT_MARKERS) or len(c.get_text(" ", strip=True)) > 500 for c in cells)
        soft = any(c.find(_CELL_BLOCKS) or len(c.find_all("p")) > 1 for c in cells)
        if not strong and (not soft or _header_grid(table)):
            for cell in cells:  # a data table: a list in a cell reads "a; b; c"
                for item in cell.find_all(["li", "dd", "p"])[:-1]:
                    item.append(";")
            continue
        for cell in cells:
            if cell.find([*_LAYOUT_MARKERS, *_CELL_BLOCKS, "p"]):
                cell.unwrap()
            else:
                cell.name = "p"
        for el in _own(table, ["caption"]):
            el.name = "p"
        for el in _own(table, ["thead", "tbody", "tfoot", "tr"]):
            el.unwrap()
        table.unwrap()


def _header_grid(table) -> bool:
    """A header row of <th> over rows of as many cells: a data table, whatever its cells hold."""
    rows = [[c for c in tr.find_all(["td", "th"]) if c.find_parent("tr") is tr] for tr in _own(table, ["tr"])]
    return (len(rows) > 1 and len(rows[0]) > 1 and all(c.name == "th" for c in rows[0])
            and all(len(r) == len(rows[0]) for r in rows))


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
