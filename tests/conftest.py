"""Shared fixtures for the whole suite.

* Every test runs with the developer's ``ASSISTANT_*`` variables removed and its own feedback database.
  The model cache (``Settings.home``) is left alone on purpose: the offline model is built once per
  machine and shared, not rebuilt per test.
* ``embedder``: the real default model on the default engine, loaded once per session (``load_embedder``
  is lru-cached, so the CLI run in-process by ``CliRunner`` gets the very same object).
  ``reference_tokenizer``: the model's Hugging Face tokenizer, the reference for token counts.
* ``corpus``: a small mixed corpus (Markdown with front matter, plain text in a subfolder, a 3-page PDF
  with a nested outline, DOCX with heading styles, HTML) written into the test's tmp_path.
  ``write_pdf_file`` / ``write_docx_file`` make other real PDFs and DOCX files.
* ``served``: one read-only index over that corpus, built once per session, for tests that only search
  and ask. Tests that change files or indexes build their own in ``tmp_path``.
* ``chroma_server``: a real Chroma server (``chroma run``) for the session, started on first use
  (``own_chroma_server``: one for a single test, which may stop it and start it again);
  ``deployment`` parametrizes a test over both stores: ``settings_for(folder, **deployment)`` is the
  embedded default in one run and that server in the other.
* The fast tier's stand-ins (``make test-fast``): ``hashing_embedder`` (assistant.embeddings.fake),
  ``overlap_scorer`` (tests/fakes.py, for the relevance model) and ``fake_served``, the small corpus
  indexed and served with both: real loaders, chunker, Chroma, BM25, fusion and answer policy, no model.

Tiers. ``slow`` marks the tests that load a real model or start a server; ``make test-fast`` runs
``-m "not slow and not browser"``, ``make test`` runs everything. Using one of ``SLOW_FIXTURES`` marks a
test slow (``pytest_collection_modifyitems`` below), so a new test on the real model needs no mark of its
own; a test that reaches a model another way (the CLI in-process, a subprocess, a module fixture) carries
an explicit ``slow`` mark. The fast tier cannot load a model by accident: outside ``slow`` and
``browser`` tests, loading the embedding or the relevance model raises (``_forbid_models``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.embeddings import embedder as embedder_module
from assistant.embeddings import load_embedder
from assistant.embeddings.fake import fake_embedder
from assistant.settings import Settings

# --- the small corpus ---------------------------------------------------------------------------

# (outline path of the page, text of the page); fpdf2's core font is Latin-1, so no en dashes here.
PDF_TITLE = "Handbok om sociala företag"
PDF_PAGES: list[tuple[tuple[str, ...], str]] = [
    (
        ("Inledning",),
        "Handboken beskriver hur kommunens förvaltningar samarbetar med sociala företag i vardagen. "
        "Den riktar sig till chefer och handläggare som köper tjänster.",
    ),
    (
        ("Upphandling", "Reserverade kontrakt"),
        "Enligt 4 kap. 18 § LOU får en kommun reservera ett kontrakt för leverantörer vars huvudsakliga "
        "syfte är social och yrkesmässig integration. Minst 30 procent av de anställda hos leverantören "
        "ska ha funktionsnedsättning eller vara missgynnade arbetstagare.",
    ),
    (
        ("Partnerskap",),
        "Idéburet offentligt partnerskap är en samverkansform mellan kommunen och en ideell förening. "
        "Partnerskapet bygger på att båda parter bidrar med resurser till ett gemensamt mål.",
    ),
]

MARKDOWN = """\
---
title: Direktupphandling för kommuner
type: regelverk
audience: [kommun, företag]
valid_as_of: 2026-11-01
last_checked: 2026-11-28
---

# Direktupphandling

Det här dokumentet sammanfattar reglerna om direktupphandling.

## Gränsen för direktupphandling

Direktupphandlingsgränsen i LOU är 700 000 kronor från och med 2022-02-01. En kommun kan alltså
direktupphandla när värdet av köpet ligger under 700 000 kronor.

### Dokumentation

Kommunen ska dokumentera skälen till en direktupphandling när värdet överstiger 100 000 kronor (källa: S54).
"""

TEXT = """\
Arbetsintegrerande sociala företag anställer personer som står långt från arbetsmarknaden.

Vinsten i ett arbetsintegrerande socialt företag återinvesteras i den egna verksamheten.
"""

DOCX_TITLE = "Riktlinjer för samverkan"
DOCX_CONTENT: list[tuple[int, str]] = [  # (heading level, text); level 0 means a body paragraph
    (1, "Samverkan"),
    (0, "Kommunen samverkar med sociala företag genom avtal och regelbundna möten."),
    (2, "Regionala nätverk"),
    (0, "Regionala nätverk för sociala företag samordnas av en särskild samordnare i varje län."),
    (1, "Uppföljning"),
    (0, "Samverkan följs upp en gång per år i en gemensam rapport till kommunstyrelsen."),
]

HTML = """\
<!doctype html>
<html lang="sv"><head><title>Vägledning om marknadsdialog</title>
<script>var tracking = "ska inte indexeras";</script></head>
<body>
<nav>Meny Start Kontakt</nav>
<h1>Vägledning om marknadsdialog</h1>
<h2>Dialog före upphandling</h2>
<p>En kommun kan föra dialog med marknaden innan en upphandling annonseras, så länge alla
leverantörer behandlas lika.</p>
<h3>Tips</h3>
<ul><li>Bjud in till ett öppet informationsmöte.</li><li>Publicera <b>frågor och svar</b> för alla.</li></ul>
<h2>Efter tilldelning</h2>
<p>Efter tilldelningsbeslutet ska kommunen meddela alla anbudsgivare vilket anbud som antogs.</p>
<footer>Sidfot som inte ska indexeras</footer>
</body></html>
"""


def write_pdf(path: Path, pages: list[tuple[tuple[str, ...], str]], title: str = "") -> Path:
    """A real PDF (fpdf2): one page per entry, each starting an outline entry at the given depth."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    for outline, text in pages:
        pdf.add_page()
        for level, heading in enumerate(outline):
            pdf.start_section(heading, level=level)
        pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_docx(path: Path, content: list[tuple[int, str]], title: str = "") -> Path:
    """A real DOCX (python-docx) with the built-in Title and Heading n styles."""
    import docx

    document = docx.Document()
    if title:
        document.add_heading(title, 0)  # style "Title"
    for level, text in content:
        if level:
            document.add_heading(text, level)
        else:
            document.add_paragraph(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


@dataclass
class Corpus:
    """Paths of the corpus files, plus what was written into them (for the tests to compare with)."""

    dir: Path
    markdown: Path
    text: Path
    pdf: Path
    docx: Path
    html: Path
    pdf_title: str = PDF_TITLE
    pdf_pages: tuple = tuple(PDF_PAGES)
    docx_title: str = DOCX_TITLE
    docx_content: tuple = tuple(DOCX_CONTENT)

    @property
    def files(self) -> list[Path]:
        return [self.markdown, self.text, self.pdf, self.docx, self.html]


def make_corpus(folder: Path) -> Corpus:
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "direktupphandling.md"
    md.write_text(MARKDOWN, encoding="utf-8")
    txt = folder / "anteckningar" / "arbetsintegrering.txt"
    txt.parent.mkdir()
    txt.write_text(TEXT, encoding="utf-8")
    return Corpus(
        dir=folder,
        markdown=md,
        text=txt,
        pdf=write_pdf(folder / "handbok.pdf", PDF_PAGES, PDF_TITLE),
        docx=write_docx(folder / "riktlinjer.docx", DOCX_CONTENT, DOCX_TITLE),
        html=_write(folder / "marknadsdialog.html", HTML),
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- tiers ---------------------------------------------------------------------------------------

# Fixtures that load a real model, build an index with it or start a server: their users are slow.
SLOW_FIXTURES = frozenset({
    "embedder", "other_prefix_embedder", "model_dir", "reference_tokenizer", "served",  # the real models
    "chroma_server", "deployment", "own_chroma_server",  # a Chroma server
    "trap", "public_server", "admin_server",  # tests/security: the chat server as a subprocess
    "scorer", "cached_model",  # module fixtures on a real model: test_crossencoder, test_e5_offline
})


# Modules whose every test is slow, not even imported when a run leaves slow tests out: importing
# hypothesis alone took 1.2 s of the fast tier's 7.5 s collection.
SLOW_MODULES = frozenset({"tests/security/test_fuzz_loaders.py"})


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    leaves_slow_out = "not slow" in (config.option.markexpr or "")
    if leaves_slow_out and collection_path.is_relative_to(config.rootpath):
        return collection_path.relative_to(config.rootpath).as_posix() in SLOW_MODULES or None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


class ModelInFastTestError(RuntimeError):
    pass


_fast_test: list[str] = []  # the node id of the running fast test, while one runs


def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture of the test, module- and session-scoped ones included
    _fast_test[:] = [] if item.get_closest_marker("slow") or item.get_closest_marker("browser") else [item.nodeid]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _fast_test[:] = []


def _forbid_models() -> None:
    """Wrap what loads a model: in a test that is not marked slow it raises, naming the test.

    ONNX Runtime's session is the one door of both models on their default engines, whatever the project's
    code around it looks like; the project's loaders are guarded too (when they exist), so a fresh machine
    fails at once instead of first exporting a model for minutes; and the torch paths."""
    import onnxruntime

    from assistant import crossencoder, relevance

    def guarded(load, what):
        def call(*args, **kwargs):
            if _fast_test:
                raise ModelInFastTestError(f"{_fast_test[0]} loads {what}: mark it slow or use the stand-ins "
                                           "(hashing_embedder, overlap_scorer, fake_served)")
            return load(*args, **kwargs)
        return call

    for owner, name, what in [
        (onnxruntime.InferenceSession, "__init__", "an ONNX model"),
        (embedder_module, "_lean_encoder", "the embedding model"),  # not the cached ``_load``: its argument
        (embedder_module, "_torch_encoder", "the embedding model (torch)"),  # checks stay testable
        (relevance, "load_relevance_model", "the relevance model"),
        (crossencoder, "load_scorer", "the relevance model (torch)"),
    ]:
        if hasattr(owner, name):
            setattr(owner, name, guarded(getattr(owner, name), what))


_forbid_models()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ASSISTANT_* setting of the developer leaks in; feedback goes to the test's own folder."""
    for name in list(os.environ):
        if name.startswith("ASSISTANT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(tmp_path / "feedback.sqlite3"))


@pytest.fixture(scope="session")
def embedder():
    """The real default model, loaded once; shared with in-process CLI runs via the lru cache."""
    return load_embedder(Settings())


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The default model's sentence-transformers folder (built offline on first use, then shared)."""
    from assistant.embeddings.e5_offline import build_model_dir

    return build_model_dir(Settings().model_cache)


@pytest.fixture(scope="session")
def reference_tokenizer(model_dir):
    """The default model's Hugging Face tokenizer, as sentence-transformers runs it: token counts are
    checked against it independently of the engine the embedder runs on."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="session")
def other_prefix_embedder(embedder):
    """The same model under other prefix settings: another fingerprint, so indexes must be rebuilt."""
    return load_embedder(Settings(query_prefix="fråga: ", passage_prefix=""))


@pytest.fixture
def write_pdf_file():
    """``write_pdf(path, [(outline path, page text), ...], title)``: a real PDF made with fpdf2."""
    return write_pdf


@pytest.fixture
def write_docx_file():
    """``write_docx(path, [(heading level or 0, text), ...], title)``: a real DOCX made with python-docx."""
    return write_docx


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    """A fresh, writable copy of the small mixed corpus."""
    return make_corpus(tmp_path / "corpus")


@pytest.fixture
def settings_for(tmp_path: Path):
    """Settings for a corpus folder with the index in this test's tmp folder."""

    def make(*corpus_dirs: Path, **changes) -> Settings:
        return Settings(corpus_dirs=tuple(corpus_dirs), index_dir=tmp_path / "index", **changes)

    return make


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory):
    """The URL of a real Chroma server (the ``chroma`` CLI of this environment) with its data in a tmp folder;
    stopped at the end of the session. Started as benchmarks/scale.py starts its servers: one way to run it."""
    from benchmarks.scale import chroma_server as local_chroma_server

    with local_chroma_server(tmp_path_factory.mktemp("chroma-server")) as (url, _pid):
        yield url


class RestartableChroma:
    """A Chroma server of one test's own (``chroma run``, as ``chroma_server``) that the test may stop and start
    again: same port and same data folder, so to its clients it is the same server coming back."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.url = folder, 0, ""
        self._running: contextlib.AbstractContextManager | None = None

    def start(self) -> str:
        from benchmarks.scale import chroma_server as local_chroma_server

        running = local_chroma_server(self.folder, self.port)
        self.url, _pid = running.__enter__()
        self.port, self._running = int(self.url.rsplit(":", 1)[1]), running
        return self.url

    def stop(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            running.__exit__(None, None, None)


@pytest.fixture
def own_chroma_server(tmp_path: Path) -> Iterator[RestartableChroma]:
    """A running ``RestartableChroma`` for this test alone (``chroma_server`` is shared: never stop that one)."""
    server = RestartableChroma(tmp_path / "own-chroma")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "server"])
def deployment(request: pytest.FixtureRequest) -> dict:
    """Settings changes for the store under test: none (embedded Chroma) or the session's Chroma server."""
    if request.param == "embedded":
        return {}
    return {"chroma_url": request.getfixturevalue("chroma_server")}


@dataclass
class Served:
    corpus: Corpus
    settings: Settings
    assistant: object  # assistant.pipeline.Assistant
    report: object  # assistant.types.IndexReport


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, embedder) -> Served:
    """One index over the small corpus, built once; tests must not change its files or index."""
    from assistant.pipeline import Assistant

    root = tmp_path_factory.mktemp("served")
    corpus = make_corpus(root / "corpus")
    settings = Settings(corpus_dirs=(corpus.dir,), index_dir=root / "index")
    assistant = Assistant(settings, embedder)
    report = assistant.index()
    return Served(corpus, settings, assistant, report)


# --- the fast tier's stand-ins -------------------------------------------------------------------


@pytest.fixture(scope="session")
def hashing_embedder():
    """The deterministic hashing embedder (assistant.embeddings.fake): no model, same vectors every run."""
    return fake_embedder()


@pytest.fixture
def overlap_scorer():
    """The relevance model's stand-in (tests/fakes.py): word overlap of question and sentence."""
    from fakes import WordOverlapScorer

    return WordOverlapScorer()


@pytest.fixture(scope="session")
def fake_served(tmp_path_factory: pytest.TempPathFactory, hashing_embedder) -> Served:
    """``served`` with the stand-ins: the small corpus indexed and served without any model. Read-only."""
    from fakes import WordOverlapScorer

    from assistant.pipeline import Assistant

    root = tmp_path_factory.mktemp("fake-served")
    corpus = make_corpus(root / "corpus")
    settings = Settings(corpus_dirs=(corpus.dir,), index_dir=root / "index")
    assistant = Assistant(settings, hashing_embedder, WordOverlapScorer())
    report = assistant.index()
    return Served(corpus, settings, assistant, report)


# --- a tiny bench folder (the layout of ../shared/bench) -----------------------------------------


def _jsonl(path: Path, records: list[dict]) -> None:
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_fake_bench(folder: Path) -> Path:
    """The five files of ../shared/bench with a few records each, in their real formats: SweQUAD-MC dev and
    training passages (one training passage per side of the holdout split), SQuAD-sv paragraphs of a dev,
    a validation and a training article, and SweFAQ answers."""
    from assistant.evalsets import swequad_train_split

    folder.mkdir(parents=True, exist_ok=True)
    dev_p0 = ("Uppehållstillstånd för studier\r\nDu ska ta med ditt pass när du hämtar beslutet på ambassaden. "
              "Beslutet gäller i ett år.")
    dev_p1 = ("Arbetstillstånd\r\nEn arbetsgivare måste annonsera tjänsten i tio dagar innan ett erbjudande "
              "om anställning lämnas.")
    _jsonl(folder / "swequad_mc_dev.jsonl", [
        {"id": "swequad-dev-0000", "question": "Vad ska du ta med när du hämtar beslutet?", "answer": dev_p0,
         "category": "Studier", "passage_id": "swequad-dev-p000", "short_answer": "ditt pass",
         "short_answer_start": dev_p0.index("ditt pass"), "distractors": ["ett foto"], "split": "dev"},
        {"id": "swequad-dev-0001", "question": "Hur länge gäller beslutet?", "answer": dev_p0,
         "category": "Studier", "passage_id": "swequad-dev-p000", "short_answer": "ett år",
         "short_answer_start": dev_p0.index("ett år"), "distractors": ["två år"], "split": "dev"},
        {"id": "swequad-dev-0002", "question": "Hur länge måste tjänsten annonseras?", "answer": dev_p1,
         "category": "Arbete", "passage_id": "swequad-dev-p001", "short_answer": "tio dagar",
         "short_answer_start": dev_p1.index("tio dagar"), "distractors": ["en vecka"], "split": "dev"},
    ])
    ids = [f"swequad-training-p{i:03d}" for i in range(40)]
    held = next(p for p in ids if swequad_train_split(p) == "holdout")
    kept = next(p for p in ids if swequad_train_split(p) == "train")
    held_text = "Medborgarskap\r\nAvgiften för en ansökan om medborgarskap är 1 500 kronor."
    kept_text = "Körkort\r\nKörkort utfärdas av Transportstyrelsen efter godkända prov."
    _jsonl(folder / "swequad_mc_train.jsonl", [
        {"id": "swequad-training-0000", "question": "Vad kostar ansökan om medborgarskap?",
         "answer": held_text, "category": "Medborgarskap", "passage_id": held, "short_answer": "1 500 kronor",
         "short_answer_start": held_text.index("1 500 kronor"), "distractors": ["900 kronor"], "split": "training"},
        {"id": "swequad-training-0001", "question": "Vem utfärdar körkort?",
         "answer": kept_text, "category": "Körkort", "passage_id": kept, "short_answer": "Transportstyrelsen",
         "short_answer_start": kept_text.index("Transportstyrelsen"), "distractors": ["Polisen"], "split": "training"},
    ])
    rhine_0 = "Rhen är en flod i Europa som rinner från Alperna till Nordsjön. Floden är 1 230 kilometer lång."
    rhine_1 = "Rhen passerar städerna Basel, Köln och Rotterdam. Vid Rotterdam ligger Europas största hamn."
    rhine_2 = "Längs Rhen odlas vin på branta sluttningar sedan romartiden."  # only unanswerable questions
    normans = "Normannerna var ett folk i Normandie i Frankrike under 900- och 1000-talen."
    pharmacy = "Farmaci är läran om läkemedel och hur de framställs."

    def answerable(id_, question, text, article, pid, span):
        return {"id": id_, "question": question, "answer": text, "category": article, "passage_id": pid,
                "short_answer": span, "split": "dev"}

    def unanswerable(id_, question, text, article, plausible):
        return {"id": id_, "question": question, "answer": text, "category": article,
                "plausible_answer": plausible, "answerable": False, "split": "dev"}

    _jsonl(folder / "squad_v2_sv_dev.jsonl", [
        answerable("r1", "Hur lång är Rhen?", rhine_0, "Rhine", "squadsv-dev-p0000", "1 230 kilometer"),
        answerable("r2", "Vart rinner Rhen?", rhine_0, "Rhine", "squadsv-dev-p0000", "Nordsjön"),
        answerable("r3", "Var ligger Europas största hamn?", rhine_1, "Rhine", "squadsv-dev-p0001", "Rotterdam"),
        answerable("n1", "I vilket land ligger Normandie?", normans, "Normans", "squadsv-dev-p0002", "Frankrike"),
        answerable("f1", "Vad är farmaci?", pharmacy, "Pharmacy", "squadsv-dev-p0003", "läran om läkemedel"),
    ])
    _jsonl(folder / "squad_v2_sv_dev_unanswerable.jsonl", [
        unanswerable("ru1", "Hur djup är Rhen?", rhine_0, "Rhine", "1 230 kilometer"),
        unanswerable("ru2", "Vem grundade Rotterdams hamn?", rhine_1, "Rhine", "Rotterdam"),
        unanswerable("ru3", "Vilket vin odlades först vid Rhen?", rhine_2, "Rhine", "vin"),
        unanswerable("nu1", "Vem var normannernas första kung?", normans, "Normans", "Normandie"),
    ])
    faq = [
        ("Får flyktingar vaccin mot covid-19?", "Flyktingar från Ukraina får vaccin mot covid-19 kostnadsfritt."),
        ("Hur bokar jag tid för vaccination?", "Tid för vaccination bokas via 1177 eller vårdcentralen."),
        ("Vad kostar vaccinationen?", "Flyktingar från Ukraina får vaccin mot covid-19 kostnadsfritt."),
    ]
    _jsonl(folder / "swefaq_dev.jsonl", [
        {"id": f"swefaq-dev-{i:04d}", "question": q, "answer": a, "category": "Vaccin", "category_id": 1,
         "source": "Socialstyrelsen", "link": "https://example.invalid", "split": "dev"}
        for i, (q, a) in enumerate(faq)
    ])
    return folder


@pytest.fixture
def fake_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny bench folder, named by ASSISTANT_BENCH_DIR for this test."""
    folder = write_fake_bench(tmp_path / "bench")
    monkeypatch.setenv("ASSISTANT_BENCH_DIR", str(folder))
    return folder
