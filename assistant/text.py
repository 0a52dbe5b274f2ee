"""Swedish text helpers: whitespace normalisation and sentence splitting that keeps exact spans.

Hand-written because citations must be verbatim spans of the source, and generic splitters break Swedish
legal prose at abbreviations ("4 kap. 18 §", "t.ex.", "bl.a.", "prop. 2015/16:195 s. 439").
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")

# Lower-cased tokens that end with a period without ending a sentence.
ABBREVIATIONS = {
    "t.ex", "bl.a", "m.m", "m.fl", "s.k", "d.v.s", "dvs", "o.s.v", "osv", "resp", "ca", "kap", "s", "st",
    "nr", "dnr", "jfr", "prop", "p", "f", "ff", "a", "e.d", "fr.o.m", "t.o.m", "kl", "milj", "mdr",
    "art", "bet", "fig", "tab", "inkl", "exkl", "ang", "etc", "e.g", "i.e",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "okt", "nov", "dec", "ev", "vs",
    "u.å", "uppl", "red", "ibid", "forts", "mom", "ung", "enl", "dir", "sfs", "sou", "ds",
}

# A candidate sentence end: . ! ? (optionally followed by closing quotes/brackets) then whitespace.
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+)")
_LIST_LINE = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|\|)\s*")


# "(källa: …)" notes; one level of brackets inside, since a spelled-out source keeps its date:
# "(källa: SKR, Föreningsbidrag (2023-12-13))"
SOURCE_NOTE = re.compile(r"\s*\((?:källa|källor|source)(?:[^()]|\([^()]*\))*\)", re.I)


def without_source_notes(text: str) -> str:
    """What a text says, without its "(källa: …)" notes and the source column of its tables: what the
    models read (embeddings, bm25, the relevance model) and what the answer's word budget counts. A note
    names a source, often in more words than the claim, and would pull in every passage that cites the
    same source."""
    return SOURCE_NOTE.sub("", _without_source_columns(text) if "|" in text else text)


# A table column of sources, by its header ("| Period | Belopp | Källa |"): the loader spells its keys out
# with the sources' names, as it does a note's.
SOURCE_HEADER = re.compile(r"(källa|källor|source|sources)", re.I)
_DELIMITER_ROW = re.compile(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")
_CELL_BORDER = re.compile(r"(?<!\\)\|")


def _cells(row: str) -> list[str]:
    """The cells of a table row; a leading or trailing pipe opens or closes the row, an escaped one is text."""
    parts = _CELL_BORDER.split(row.strip())
    if parts and not parts[0]:
        parts = parts[1:]
    if parts and not parts[-1]:
        parts = parts[:-1]
    return parts


def _without_source_columns(text: str) -> str:
    """Each table (a header row, then its delimiter row and rows) without the columns headed "Källa".

    Only the header tells a source column apart, so a row read without it (a table row split off into a
    chunk of its own, a row as a sentence) keeps its source cell."""
    lines = text.split("\n")
    drop: set[int] = set()  # the source columns of the table being read; empty outside one
    for i, line in enumerate(lines):
        if "|" not in line or not line.strip():
            drop = set()
            continue
        if i + 1 < len(lines) and "|" in lines[i + 1] and _DELIMITER_ROW.fullmatch(lines[i + 1]):
            drop = {j for j, cell in enumerate(_cells(line)) if SOURCE_HEADER.fullmatch(cell.strip())}
        if drop:
            kept = [cell for j, cell in enumerate(_cells(line)) if j not in drop]
            lines[i] = "|" + "|".join(kept) + "|" if kept else ""
    return "\n".join(lines)


def table_parts(text: str) -> tuple[list[str], list[str]] | None:
    """(header and delimiter rows, body rows) of a text that is one Markdown table, else None."""
    lines = text.split("\n")
    if (len(lines) < 3 or not all(line.lstrip().startswith("|") for line in lines)
            or not _DELIMITER_ROW.fullmatch(lines[1])):
        return None
    return lines[:2], lines[2:]


def normalize_ws(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the period ending at ``end`` closes an abbreviation or a number, not a sentence."""
    if text[end - 1] != ".":
        return False
    start = end - 1
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "([\"'":
        start -= 1
    token = text[start : end - 1].lower()
    if token in ABBREVIATIONS or token.rstrip(".") in ABBREVIATIONS:
        return True
    return len(token) == 1 and token.isalpha()  # initials: "A. Bro"


def _next_starts_sentence(text: str, pos: int) -> bool:
    rest = text[pos:].lstrip()
    if not rest:
        return True
    c = rest[0]
    # A sentence starts with a capital, a digit, a quote, a bracket or a list/table marker.
    return c.isupper() or c.isdigit() or c in "\"'”“(§[-*|•"


def split_sentences(text: str) -> list[str]:
    """Split into sentences; each returned sentence is an exact substring of ``text``.

    Lines of lists and tables are units of their own, and so is a heading-like line (see
    ``_heading_breaks``); other prose lines are joined within a paragraph.
    """
    sentences: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.split("\n")
        if any(_LIST_LINE.match(line) for line in lines):
            units = [line for line in lines if line.strip()]
        else:
            units = _heading_breaks(para)
        for unit in units:
            sentences.extend(_split_unit(unit))
    return [s for s in sentences if s]


HEADING_MAX_WORDS = 10  # a visual line of running PDF prose is longer; a heading rarely is
_CLOSED = re.compile(r"[.!?…:;,\"'”’)\]]\s*$")
_INNER_END = re.compile(r"[.!?…]\s")
# A line ending in one of these is running text broken by the layout, never a heading: "Det gäller\nLOU".
_CONTINUES = frozenset({
    "är", "var", "blir", "och", "att", "som", "för", "i", "på", "med", "av", "till", "om", "den", "det", "en",
    "ett", "de", "har", "hade", "kan", "ska", "får", "gäller", "eller", "men", "från", "vid", "under", "efter",
    "enligt", "inom", "mellan", "samt", "så", "än", "hos", "mot", "utan", "genom", "the", "of", "and", "to",
})


def is_heading_like(line: str) -> bool:
    """A short line without closing punctuation: a heading, a title line or a list stub, not prose."""
    stripped = line.strip()
    tokens = stripped.split()
    return (bool(tokens) and len(tokens) <= HEADING_MAX_WORDS and not _CLOSED.search(stripped)
            and not _INNER_END.search(stripped) and tokens[-1].lower() not in _CONTINUES)


def _heading_breaks(para: str) -> list[str]:
    """Cut a paragraph after each heading-like line that stands alone: the line before it closed a
    sentence (or there is none) and the next line starts with a capital letter.

    Plain-text exports (and many authority web texts) put a heading on its own line directly above its
    text; joined, "Efter beslut Beslutet skickas …" would become one sentence that starts with a title."""
    lines = para.split("\n")
    units: list[str] = []
    current: list[str] = []
    for i, line in enumerate(lines):
        current.append(line)
        nxt = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
        alone = i == 0 or bool(_CLOSED.search(lines[i - 1])) or is_heading_like(lines[i - 1])
        if nxt and (nxt[0].isupper() or nxt[0] in "\"”“'") and alone and is_heading_like(line):
            units.append("\n".join(current))
            current = []
    if current:
        units.append("\n".join(current))
    return units


MAX_ASIDE_CHARS = 400  # a longer bracket is more likely a stray one closed by a later aside than one aside


def _asides(unit: str) -> list[tuple[int, int]]:
    """(open, close) positions of the brackets that close within the unit and within MAX_ASIDE_CHARS."""
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    for i, c in enumerate(unit):
        if c == "(":
            stack.append(i)
        elif c == ")" and stack:
            start = stack.pop()
            if i - start <= MAX_ASIDE_CHARS:
                spans.append((start, i))
    return spans


def _split_unit(unit: str) -> list[str]:
    out: list[str] = []
    start = 0
    # No sentence ends inside brackets: a spelled-out source note names a title that may end in "?" or
    # "." ("(källa: Trendens 2018, "Bara IOP?" (2018-10-17))"); cut there, a sentence would carry half a
    # note the models then read, and the rest would become a sentence of its own.
    asides = _asides(unit) if "(" in unit else []
    for m in _END.finditer(unit):
        end = m.end()
        if _is_abbreviation(unit, m.start() + 1 if unit[m.start()] == "." else end):
            continue
        if not _next_starts_sentence(unit, end):
            continue
        if any(open_ < m.start() and close >= end for open_, close in asides):
            continue
        piece = unit[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    tail = unit[start:].strip()
    if tail:
        out.append(tail)
    return out


_WORD = re.compile(r"[0-9A-Za-zÅÄÖåäöÉéÜü§]+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]
