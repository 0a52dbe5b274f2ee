"""The `assistant` command line: JSON contracts of search and ask (single and --batch), index reports,
and clear failures for missing or empty corpus folders.

Most runs use click's CliRunner in-process (the model is shared through load_embedder's cache); one runs
the installed console script in a subprocess, exactly as a user or a script would.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cite import verify
from assistant.cli import cli
from assistant.pipeline import LLM_FAILED
from assistant.text import normalize_ws
from assistant.types import Citation

SEARCH_KEYS = {"id", "question", "hits", "timings_ms"}
HIT_KEYS = {"rank", "score", "source", "title", "section", "page", "text"}
ASK_KEYS = {"id", "question", "answer", "abstained", "citations", "mode", "timings_ms"}
ASK_OPTIONAL = {"nearest", "reason", "notice", "confidence"}
CITATION_KEYS = {"n", "source", "title", "section", "page", "quote"}

pytestmark = pytest.mark.slow  # the CLI loads the real model in-process (load_embedder), even to fail

PAGE2_QUESTION = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"
UNRELATED = "Hur bakar man surdegsbröd?"


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input)
    return result


def where(served) -> list[str]:
    return ["--corpus", str(served.corpus.dir), "--index", str(served.settings.index_dir)]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_search_record(record: dict) -> None:
    assert set(record) == SEARCH_KEYS
    assert isinstance(record["timings_ms"], dict)
    assert all(isinstance(v, (int, float)) for v in record["timings_ms"].values())
    for rank, hit in enumerate(record["hits"], start=1):
        assert set(hit) == HIT_KEYS
        assert hit["rank"] == rank
        assert isinstance(hit["score"], float) and isinstance(hit["text"], str)
        assert hit["page"] is None or isinstance(hit["page"], int)


def check_ask_record(record: dict, corpus_dir: Path) -> None:
    assert ASK_KEYS <= set(record) <= ASK_KEYS | ASK_OPTIONAL
    assert isinstance(record["abstained"], bool)
    assert record["mode"] in {"extractive", "llm"}
    assert all(isinstance(v, (int, float)) for v in record["timings_ms"].values())
    for n, c in enumerate(record["citations"], start=1):
        assert set(c) == CITATION_KEYS
        assert c["n"] == n and f"[{n}]" in record["answer"]
        citation = Citation(n=c["n"], source=c["source"], title=c["title"], section=c["section"],
                            page=c["page"], quote=c["quote"], corpus_dir=str(corpus_dir))
        assert verify(citation) is None, c
        # and independently of assistant.cite: text files are read as they are on disk
        if c["source"].endswith((".md", ".txt")):
            raw = (corpus_dir / c["source"]).read_text(encoding="utf-8")
            assert normalize_ws(c["quote"]) in normalize_ws(raw)


# --- search ---------------------------------------------------------------------------------------


def test_search_json_contract(served):
    result = run("search", "--json", *where(served), PAGE2_QUESTION)
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    check_search_record(record)
    assert record["id"] is None and record["question"] == PAGE2_QUESTION
    assert len(record["hits"]) == served.settings.top_k
    top = record["hits"][0]
    assert (top["source"], top["page"], top["title"]) == ("handbok.pdf", 2, served.corpus.pdf_title)
    assert top["section"] == " > ".join(served.corpus.pdf_pages[1][0])


def test_search_text_output_and_options(served):
    result = run("search", "-k", "2", "--mode", "lexical", *where(served), "kommunstyrelsen")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line[:2] in {"1.", "2."}]
    assert lines and "(riktlinjer.docx)" in lines[0]
    assert run("search", "--mode", "magisk", *where(served), "x").exit_code == 2


def test_search_batch_keeps_order_and_ids(served):
    lines = [
        {"id": "a", "question": PAGE2_QUESTION},
        {"id": 7, "question": "Vem samordnar de regionala nätverken?"},
        {"question": "Vad är idéburet offentligt partnerskap?"},  # no id: the line number is used
    ]
    batch = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    result = run("search", "--batch", "-", *where(served), input=batch)
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["id"] for r in records] == ["a", 7, 3]
    assert [r["question"] for r in records] == [x["question"] for x in lines]
    for r in records:
        check_search_record(r)
    assert records[0]["hits"][0]["page"] == 2
    assert records[1]["hits"][0]["source"] == "riktlinjer.docx"


# --- ask ------------------------------------------------------------------------------------------


def test_ask_json_contract(served):
    result = run("ask", "--json", *where(served), PAGE2_QUESTION)
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    check_ask_record(record, served.corpus.dir)
    assert record["id"] is None and not record["abstained"] and record["mode"] == "extractive"
    assert record["citations"][0]["source"] == "handbok.pdf" and record["citations"][0]["page"] == 2


def test_ask_json_refusal_contract(served):
    result = run("ask", "--json", *where(served), UNRELATED)
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    check_ask_record(record, served.corpus.dir)
    assert record["abstained"] and record["citations"] == []
    assert record["nearest"] and set(record["nearest"][0]) == HIT_KEYS


def test_ask_text_output_lists_sources(served):
    result = run("ask", *where(served), "Vem samordnar de regionala nätverken?")
    assert result.exit_code == 0, result.output
    assert "Källor:" in result.stdout
    assert "[1] Riktlinjer för samverkan – Samverkan > Regionala nätverk (riktlinjer.docx)" in result.stdout


def test_ask_text_output_says_when_the_llm_could_not_be_reached(served, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    monkeypatch.setenv("ASSISTANT_LLM_PROVIDER", "openai")
    monkeypatch.setenv("ASSISTANT_LLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ASSISTANT_LLM_TIMEOUT", "5")
    result = run("ask", *where(served), "Vem samordnar de regionala nätverken?")
    assert result.exit_code == 0, result.output
    answer, rest = result.stdout.split("\n\nObs: ", 1)
    assert answer.strip() and rest.startswith(LLM_FAILED + "\n")
    assert "Källor:" in rest


def test_ask_needs_a_question_or_a_batch(served):
    result = run("ask", *where(served))
    assert result.exit_code == 2
    assert "FRÅGA" in result.output


def test_ask_batch_invalid_lines_give_error_lines_and_the_rest_continue(served):
    batch = "\n".join([
        json.dumps({"id": "först", "question": PAGE2_QUESTION}, ensure_ascii=False),
        "{inte json",
        "",  # blank lines are not requests
        json.dumps({"id": "utan-fråga"}),
        json.dumps({"id": "null-fråga", "question": None}),
        json.dumps(["en", "lista"]),
        json.dumps({"id": "sist", "question": UNRELATED}, ensure_ascii=False),
    ]) + "\n"
    result = run("ask", "--batch", "-", *where(served), input=batch)
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["id"] for r in records] == ["först", 2, "utan-fråga", "null-fråga", 6, "sist"]
    errors = records[1:5]
    for r in errors:
        assert set(r) == {"id", "question", "error"} and r["error"].startswith("rad ")
    assert [r["error"].split(":")[0] for r in errors] == ["rad 2", "rad 4", "rad 5", "rad 6"]
    check_ask_record(records[0], served.corpus.dir)
    check_ask_record(records[-1], served.corpus.dir)
    assert not records[0]["abstained"] and records[-1]["abstained"]


def test_ask_batch_through_the_installed_console_script(served, tmp_path):
    """The real entry point in its own process: one JSON line per input, same order, same ids."""
    script = Path(sys.executable).with_name("assistant")
    assert script.is_file()
    questions = [
        {"id": "q1", "question": PAGE2_QUESTION},
        {"id": "q2", "question": UNRELATED},
        {"id": "q3", "question": "Och i praktiken?", "history": ["Vad gäller för reserverade kontrakt?"]},
        {"id": "q4", "question": "Vad händer med vinsten i ett arbetsintegrerande socialt företag?"},
    ]
    batch = tmp_path / "frågor.jsonl"
    batch.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in questions) + "\n{trasig\n",
                     encoding="utf-8")
    proc = subprocess.run([str(script), "ask", "--batch", str(batch), *where(served)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = json_lines(proc.stdout)
    assert [r["id"] for r in records] == ["q1", "q2", "q3", "q4", 5]
    for record, q in zip(records, questions, strict=False):
        assert record["question"] == q["question"]
        check_ask_record(record, served.corpus.dir)
    assert [r["abstained"] for r in records[:4]] == [False, True, False, False]
    assert records[2]["citations"][0]["page"] == 2  # the follow-up was read with its history
    assert "error" in records[4]


# chromadb stays: the index is served from Chroma (embedded or a server), the store of record; SciPy is
# what bm25s imports for a backend the project does not use (assistant.lean_imports)
HEAVY = ("torch", "transformers", "sentence_transformers", "langchain_core", "gradio", "scipy")


def test_ask_in_a_new_process_imports_no_heavy_module(served):
    """Issue 11: the CLI's query path runs on the lean engine (torch, transformers and sentence-transformers
    took 10 of its 12.7 s; LangChain another 0.1–0.4 s)."""
    code = (
        "import json, sys\n"
        "from assistant.cli import cli\n"
        f"cli(['ask', {PAGE2_QUESTION!r}, '--json', *{where(served)!r}], standalone_mode=False)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    answer, imported = proc.stdout.strip().splitlines()
    record = json.loads(answer)
    check_ask_record(record, served.corpus.dir)
    assert not record["abstained"] and record["citations"][0]["page"] == 2
    assert json.loads(imported) == []


# --- index ----------------------------------------------------------------------------------------


def test_index_reports_and_skips_broken_files_with_exit_zero(corpus, tmp_path):
    (corpus.dir / "trasig.pdf").write_bytes(b"%PDF-1.5\n\x00\x01 inte alls en pdf")
    (corpus.dir / "tom.txt").write_text("", encoding="utf-8")
    index_dir = tmp_path / "index"
    result = run("index", "--corpus", str(corpus.dir), "--index", str(index_dir))
    assert result.exit_code == 0, result.output
    assert "Överhoppad: trasig.pdf:" in result.stdout
    assert "Överhoppad: tom.txt: tom fil" in result.stdout
    assert f"Tillagda: {len(corpus.files)}" in result.stdout

    again = run("index", "--json", "--corpus", str(corpus.dir), "--index", str(index_dir))
    assert again.exit_code == 0, again.output
    [report] = json_lines(again.stdout)
    assert report["chunks_embedded"] == 0 and len(report["unchanged"]) == len(corpus.files)
    assert {s["source"]: s["reason"] for s in report["skipped"]}["tom.txt"] == "tom fil"

    answer = run("ask", "--json", "--corpus", str(corpus.dir), "--index", str(index_dir), PAGE2_QUESTION)
    assert answer.exit_code == 0 and not json_lines(answer.stdout)[0]["abstained"]


@pytest.mark.parametrize("command", ["index", "ask", "search"])
def test_missing_corpus_folder_fails_with_a_clear_message(tmp_path, command):
    missing = tmp_path / "finns-inte"
    args = [command, "--corpus", str(missing), "--index", str(tmp_path / "index")]
    result = run(*args, *([] if command == "index" else ["Vad gäller?"]))
    assert result.exit_code != 0
    assert f"Korpusmappen finns inte: {missing}" in result.output
    assert "Traceback" not in result.output


def test_empty_corpus_folder_fails_with_a_clear_message(tmp_path):
    empty = tmp_path / "tom"
    empty.mkdir()
    result = run("index", "--corpus", str(empty), "--index", str(tmp_path / "index"))
    assert result.exit_code != 0
    assert "innehåller inga dokument" in result.output and str(empty) in result.output


def test_ask_builds_the_index_on_first_use(corpus, tmp_path):
    result = run("ask", "--json", "--corpus", str(corpus.dir), "--index", str(tmp_path / "index"),
                 "Vem samordnar de regionala nätverken?")
    assert result.exit_code == 0, result.output
    assert "Bygger indexet först" in result.stderr
    [record] = json_lines(result.stdout)
    check_ask_record(record, corpus.dir)
    assert record["citations"][0]["source"] == "riktlinjer.docx"


class StopsServerAtLine(io.BytesIO):
    """A --batch input that stops the Chroma server when the CLI reads line ``at``: the lines before it
    were answered with the server up, the rest meet a dead server."""

    def __init__(self, lines: list[str], server, at: int):
        super().__init__("".join(line + "\n" for line in lines).encode())
        self.server, self.at, self.read_lines = server, at, 0

    def readline(self, size: int | None = -1) -> bytes:
        self.read_lines += 1
        if self.read_lines == self.at:
            self.server.stop()
        return super().readline(size)

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def test_ask_batch_names_a_server_lost_partway_and_exits_nonzero(tiny, tmp_path, own_chroma_server):
    url = own_chroma_server.url
    lines = [json.dumps({"id": n, "question": "Vad är idéburet offentligt partnerskap?"}) for n in (1, 2, 3)]
    batch = StopsServerAtLine(lines, own_chroma_server, at=2)
    result = CliRunner().invoke(cli, ["ask", "--batch", "-", "--corpus", str(tiny), "--index", str(tmp_path / "index")],
                                input=batch, env={"ASSISTANT_CHROMA_URL": url})
    assert batch.read_lines >= 2  # the server did stop partway
    assert [r["id"] for r in json_lines(result.stdout)] == [1]  # the answer before it stays
    said = f"Chroma-servern på {url} svarar inte; kontrollera ASSISTANT_CHROMA_URL och att servern körs."
    assert result.stderr.strip().splitlines()[-1] == f"Error: {said}"
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # click's error exit, no traceback


def test_version_option():
    result = run("--version")
    assert result.exit_code == 0 and "version" in result.output


# --- eval --------------------------------------------------------------------------------------------


@pytest.fixture
def evalsets_dir(tmp_path, monkeypatch) -> Path:
    """The sets' corpora and indexes go to this test's folder (the model cache stays shared)."""
    folder = tmp_path / "evalsets"
    monkeypatch.setenv("ASSISTANT_EVALSETS_DIR", str(folder))
    return folder


def test_eval_measures_several_external_sets_one_block_each(fake_bench, evalsets_dir, tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"citation_validity": 1.0, "false_refusal_rate": {"max": 1.0}}))
    result = run("eval", "--set", "swefaq-dev", "--set", "squad-dev", "--json", "--per-question",
                 "--thresholds", str(gate), "--thresholds", str(gate))
    assert result.exit_code == 0, result.output
    faq, squad = json_lines(result.stdout)
    assert (faq["set"], faq["n_questions"], faq["n_unanswerable"]) == ("swefaq-dev", 3, 0)
    assert faq["retrieval_questions"] == 3 and faq["refusal_recall"] is None
    assert (squad["set"], squad["n_answerable"], squad["n_unanswerable"]) == ("squad-dev", 3, 3)
    assert squad["key_fact_coverage"] is not None and squad["refusal_recall"] is not None
    assert [row["id"] for row in squad["per_question"]] == ["r1", "r2", "r3", "ru1", "ru2", "ru3"]
    assert faq["threshold_failures"] == squad["threshold_failures"] == []
    assert (evalsets_dir / "squad-dev" / "index" / "CURRENT").is_file()  # built beside the set's corpus

    text = run("eval", "--set", "swefaq-dev", "--set", "squad-dev", "--limit", "1")
    assert text.exit_code == 0, text.output
    assert text.stdout.count("== ") == 2 and "== squad-dev:" in text.stdout
    assert "Frågor: 2 (1 besvarbara, 1 obesvarbara)" in text.stdout  # --limit: one of each kind


def test_eval_rejects_a_misspelt_threshold_before_any_work(fake_bench, evalsets_dir, tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"recal@1": 0.5}))
    result = run("eval", "--set", "swefaq-dev", "--thresholds", str(gate))
    assert result.exit_code != 0
    assert "Okänt mått i tröskelfilen: recal@1" in result.output
    assert not evalsets_dir.exists()


def test_eval_fails_below_a_threshold_and_names_the_set(fake_bench, evalsets_dir, tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"median_answer_words": {"max": 0}}))
    result = run("eval", "--set", "swefaq-dev", "--thresholds", str(gate))
    assert result.exit_code == 1
    assert "Klarar inte tröskeln (swefaq-dev): median_answer_words" in result.stderr


def test_eval_needs_one_thresholds_file_per_set(fake_bench, evalsets_dir, tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text("{}")
    result = run("eval", "--set", "swefaq-dev", "--set", "squad-dev", "--thresholds", str(gate))
    assert result.exit_code == 2 and "en --thresholds per --set" in result.output


def test_eval_without_the_bench_folder_says_so(evalsets_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_BENCH_DIR", str(tmp_path / "saknas"))
    result = run("eval", "--set", "swequad-dev")
    assert result.exit_code == 1
    assert "Testdata saknas" in result.output and "ASSISTANT_BENCH_DIR" in result.output
