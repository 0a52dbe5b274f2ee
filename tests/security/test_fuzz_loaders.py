"""A fuzz pass over the loaders (hypothesis, derandomized: the same inputs on every run, bounded).

Random bytes and mutations of real files (byte flips, insertions of tokens the parsers care about, cuts,
splices, and for DOCX mutations of the XML inside the zip) are fed as .md, .txt, .html, .pdf and .docx to
``loaders.load`` and to real index builds of a tiny corpus. No input may crash: every failure is a
LoadError with a reason, and every build finishes with each file either indexed or skipped with a reason.
"""

from __future__ import annotations

import io
import json
import os
import unicodedata
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from assistant.indexer import build_index, current_generation
from assistant.loaders import CorpusFile, LoadError, load
from assistant.settings import Settings
from assistant.store import ChunkStore

FORMATS = ["md", "txt", "html", "pdf", "docx"]
# what the parsers react to: front matter and YAML aliases, headings, fences, markup, PDF and zip syntax,
# BOMs, NUL, invalid UTF-8, lone surrogates' UTF-8 form, control characters
TOKENS = [b"---\n", b"&a ", b"*a", b"<<: *a", b"# ", b"```", b"\n\n", b"<p>", b"</li>", b"<h2>", b"<script>",
          b"<!--", b"&#x0;", b"obj", b"endobj", b"stream\n", b"endstream", b"/Filter /FlateDecode", b"xref",
          b"trailer", b"%%EOF", b"/Encrypt", b"PK\x03\x04", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b"\xff",
          b"\xed\xa0\x80", b"\x1b[31m", b"\r", b"\x85", "å".encode(), "\u2028".encode()]

MARKDOWN = ("---\ntitle: Samverkan\ntype: vägledning\naudience: [kommun, företag]\nlast_checked: 2026-01-15\n"
            "---\n\n# Samverkan\n\n## Avtal\n\nKommunen tecknar avtal med sociala företag.\n\n```\n# kod\n```\n")
TEXT = "Arbetsintegrerande sociala företag anställer.\n\nVinsten återinvesteras i verksamheten.\n"
HTML = ("<!doctype html><html><head><title>Dialog</title></head><body><h1>Dialog</h1><h2>Före</h2>"
        "<p>En kommun kan föra dialog.</p><ul><li>Möte</li><li><p>Frågor</p></li></ul>"
        "<table><tr><td>a</td><td>b</td></tr></table></body></html>")
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, list[bytes]]:
    """Valid files of each format to mutate (PDFs with and without compressed streams)."""
    import docx
    from fpdf import FPDF

    def pdf(compress: bool) -> bytes:
        doc = FPDF()
        doc.set_compression(compress)
        doc.set_font("helvetica", size=12)
        doc.set_title("Handbok")
        for heading, text in [("Inledning", "Sida ett om kommuner."), ("Avtal", "Sida två om avtal.")]:
            doc.add_page()
            doc.start_section(heading)
            doc.multi_cell(0, 8, text)
        return bytes(doc.output())

    document = docx.Document()
    document.add_heading("Riktlinjer", 0)
    document.add_heading("Samverkan", 1)
    document.add_paragraph("Kommunen samverkar med sociala företag.")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Period", "Gräns"
    out = io.BytesIO()
    document.save(out)
    return {"md": [MARKDOWN.encode()], "txt": [TEXT.encode()], "html": [HTML.encode()],
            "pdf": [pdf(False), pdf(True)], "docx": [out.getvalue()]}


@st.composite
def mutated(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "token", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, len(out)))
        if op == "flip" and out:
            out[min(at, len(out) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            out[at:at] = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 4))
        elif op == "delete":
            del out[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del out[at:]
        elif op == "splice" and out:  # repeat a piece of the file elsewhere (nested structures, duplicates)
            start = draw(st.integers(0, len(out) - 1))
            out[at:at] = out[start : start + draw(st.integers(1, 200))]
    return bytes(out)


@st.composite
def mutated_docx(draw, data: bytes) -> bytes:
    """Keep the zip valid and mutate one of its XML parts: reaches python-docx's XML handling."""
    source = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in source.namelist() if n.endswith((".xml", ".rels"))]
    target = draw(st.sampled_from(names))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in source.namelist():
            content = source.read(name)
            z.writestr(name, draw(mutated(content)) if name == target else content)
    return out.getvalue()


@st.composite
def alias_front_matter(draw) -> bytes:
    """YAML front matter whose aliases nest (width ** levels items once expanded) from a few hundred bytes."""
    levels, width = draw(st.integers(1, 7)), draw(st.integers(2, 9))
    lines = ["---", "title: Alias", f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return ("\n".join(lines) + "\n---\n\nText om samverkan.\n").encode()


@st.composite
def fuzzed_file(draw, seeds: dict[str, list[bytes]], fmt: str | None = None) -> tuple[str, bytes]:
    fmt = fmt or draw(st.sampled_from(FORMATS))
    seed = draw(st.sampled_from(seeds[fmt]))
    kinds = [st.binary(max_size=512), mutated(seed),
             st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))]
    if fmt == "docx":
        kinds.append(mutated_docx(seed))
    if fmt == "md":
        kinds.append(alias_front_matter())
    return fmt, draw(st.one_of(kinds))


# any bytes but "/" and NUL: control characters, invalid UTF-8 (os.fsdecode's escapes), bidi overrides
file_names = st.one_of(
    st.binary(min_size=1, max_size=24).filter(lambda b: b"/" not in b and b"\x00" not in b).map(os.fsdecode),
    st.text(st.characters(exclude_characters="/\x00", codec="utf-8"), min_size=1, max_size=24),
)


def _loads_or_says_why(path: Path) -> bool:
    try:
        doc = load(CorpusFile(path.parent, path))
    except LoadError as exc:
        assert str(exc).strip(), "a LoadError must say why"
        return False
    assert doc.blocks and all(b.text.strip() for b in doc.blocks)
    for text in [doc.title, *(b.text for b in doc.blocks), *(b.section for b in doc.blocks)]:
        text.encode("utf-8")  # no lone surrogates: the index stores UTF-8
    # no amplification: what a file carries into every one of its chunks is not much bigger than the file
    size = path.stat().st_size
    assert len(json.dumps(doc.metadata, ensure_ascii=False)) <= 8 * size + 1024
    return True


@pytest.mark.slow  # hypothesis: ~15 s of generated files
def test_load_gives_a_document_or_a_load_error(seeds, tmp_path):
    folder = tmp_path / "fuzz"
    folder.mkdir()
    outcomes: dict[str, set[bool]] = {fmt: set() for fmt in FORMATS}
    runs: list[str] = []

    @settings(FUZZ, max_examples=400)
    @given(st.data())
    def run(data):
        fmt, content = data.draw(fuzzed_file(seeds))
        path = folder / f"fil.{fmt}"
        path.write_bytes(content)
        outcomes[fmt].add(_loads_or_says_why(path))
        runs.append(fmt)

    run()
    assert len(runs) == 400
    for fmt in FORMATS:  # every format reached its error paths, and the forgiving ones their parsing too
        assert False in outcomes[fmt] and (fmt == "pdf" or True in outcomes[fmt]), fmt


def test_index_builds_of_fuzzed_corpora_never_crash(seeds, tmp_path, embedder):
    """One tiny corpus, rebuilt incrementally with other fuzzed files each time (so updates of indexed
    files to broken ones, and back, are exercised too)."""
    corpus = tmp_path / "korpus"
    corpus.mkdir()
    (corpus / "bas.md").write_text("# Bas\n\nKommunen samverkar med sociala företag.\n", encoding="utf-8")
    index_settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index")
    builds: list[tuple[list[str], list[str]]] = []

    @settings(FUZZ, max_examples=5, phases=[Phase.explicit, Phase.generate])  # a build is too slow to shrink
    @given(st.lists(st.tuples(fuzzed_file(seeds), file_names), min_size=len(FORMATS), max_size=len(FORMATS)))
    def run(files):
        for old in corpus.iterdir():
            if old.name != "bas.md":
                old.unlink()
        for i, ((fmt, content), name) in enumerate(files):  # the number keeps names apart and visible
            (corpus / f"fuzz{i}-{name}.{fmt}").write_bytes(content)
        names = {p.name for p in corpus.iterdir()}
        report = build_index(index_settings, embedder)
        for skipped in report.skipped:  # a reason, and a name that shows on one line
            assert skipped.reason.strip()
            assert not any(unicodedata.category(c) in {"Cc", "Zl", "Zp"} for c in skipped.source)
        indexed = report.added + report.updated + report.unchanged
        assert set(indexed) <= names and len(indexed) + len(report.skipped) == len(names)
        kept = {s.source for s in report.skipped if s.reason.endswith("den tidigare versionen finns kvar i indexet")}
        gen = current_generation(index_settings.index_dir)
        chunks = ChunkStore(gen.path, embedder).chunks()
        assert {c.source for c in chunks} == set(indexed) | kept
        builds.append((report.added + report.updated, [s.source for s in report.skipped]))

    run()
    assert len(builds) == 5
    assert any(skipped for _, skipped in builds)
