"""assistant.llm and the LLM path of Assistant.ask, against a real local HTTP server that speaks the
OpenAI chat-completions API (the same wire protocol as vLLM, llama.cpp server, LM Studio, …)."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant import llm
from assistant.answer import REFUSAL
from assistant.cite import verify
from assistant.pipeline import LLM_FAILED, Assistant
from assistant.settings import SettingsError
from assistant.text import normalize_ws

PAGE2_QUESTION = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"


class FakeOpenAI:
    """A real HTTP server on 127.0.0.1; ``reply`` maps the received request body to (status, content)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.reply: Callable[[dict], tuple[int, str]] = lambda body: (200, "")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.paths.append(self.path)
                server.requests.append(body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                status, content = server.reply(body)
                if status != 200:  # the content, if any, is the error message
                    return self._send(status, {"error": {"message": content or "internt fel", "type": "server_error"}})
                self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "test"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                })

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = FakeOpenAI()
    yield s
    s.close()


@pytest.fixture
def fake_llm(server, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # 127.0.0.1 must be reached directly
    server.requests.clear()
    server.paths.clear()
    server.reply = lambda body: (200, "")
    return server


@pytest.fixture
def llm_assistant(served, fake_llm, embedder):
    settings = served.settings.with_(llm_provider="openai", llm_base_url=fake_llm.base_url, llm_model="test-modell",
                                     llm_api_key="hemlig", llm_timeout=20.0)
    return Assistant(settings, embedder)


def excerpts(body: dict) -> dict[int, str]:
    """The numbered excerpts in the prompt the server received: {n: text}."""
    human = next(m["content"] for m in body["messages"] if m["role"] == "user")
    parts = re.split(r"^\[(\d+)\] ", human.split("Fråga:")[0], flags=re.M)
    return {int(n): text for n, text in zip(parts[1::2], parts[2::2], strict=True)}


def number_of(body: dict, needle: str) -> int:
    return next(n for n, text in excerpts(body).items() if needle in text)


def _assert_quotes_verbatim(answer, served):
    for c in answer.citations:
        assert verify(c) is None, c.quote
        assert normalize_ws(c.quote) in normalize_ws(c.context)


# --- the wire protocol ---------------------------------------------------------------------------


def test_request_carries_system_prompt_question_and_every_passage(llm_assistant, fake_llm, served):
    fake_llm.reply = lambda body: (200, f"Minst 30 procent [{number_of(body, '30 procent')}].")
    answer = llm_assistant.ask(PAGE2_QUESTION)
    assert fake_llm.paths == ["/v1/chat/completions"]
    [body] = fake_llm.requests
    assert body["model"] == "test-modell"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    assert REFUSAL in body["messages"][0]["content"]  # the model is told the exact refusal sentence
    user = body["messages"][1]["content"]
    assert PAGE2_QUESTION in user
    hits, _ = served.assistant.search(PAGE2_QUESTION, k=llm_assistant.settings.top_k)
    sent = excerpts(body)
    assert len(sent) == len(hits)
    for n, hit in enumerate(hits, start=1):
        assert normalize_ws(hit.chunk.text) in normalize_ws(sent[n])
    assert answer.mode == "llm"


def test_history_is_sent_along(llm_assistant, fake_llm):
    fake_llm.reply = lambda body: (200, f"Minst 30 procent [{number_of(body, '30 procent')}].")
    llm_assistant.ask("Och hur stor andel av de anställda gäller det?", history=["Vad är reserverade kontrakt?"])
    user = fake_llm.requests[0]["messages"][1]["content"]
    assert "Tidigare fråga: Vad är reserverade kontrakt?" in user


# --- answers through the pipeline ----------------------------------------------------------------


def test_cited_answer_is_used_with_verbatim_quotes(llm_assistant, fake_llm, served):
    def reply(body):
        n = number_of(body, "30 procent")
        return 200, f"Minst 30 procent av de anställda ska ha funktionsnedsättning eller vara missgynnade [{n}]."

    fake_llm.reply = reply
    answer = llm_assistant.ask(PAGE2_QUESTION)
    assert answer.mode == "llm" and not answer.abstained
    assert answer.answer.startswith("Minst 30 procent av de anställda")
    assert answer.answer.endswith("[1]")
    [citation] = answer.citations
    assert (citation.n, citation.source, citation.page) == (1, "handbok.pdf", 2)
    assert "30 procent" in citation.quote
    _assert_quotes_verbatim(answer, served)


def test_uncited_sentences_are_dropped_and_markers_renumbered(llm_assistant, fake_llm, served):
    def reply(body):
        pdf = number_of(body, "30 procent")
        other = next(n for n in excerpts(body) if n != pdf)
        return 200, (
            "Kommunen bör alltid ringa juristen först. "
            f"Minst 30 procent av de anställda ska ha funktionsnedsättning [{pdf}]. "
            "Det här är en påhittad mening utan källa. "
            f"En annan sak framgår av ett annat utdrag [{other}]."
        )

    fake_llm.reply = reply
    answer = llm_assistant.ask(PAGE2_QUESTION)
    assert answer.mode == "llm"
    assert "juristen" not in answer.answer and "påhittad" not in answer.answer
    assert re.findall(r"\[(\d+)\]", answer.answer) == ["1", "2"]
    assert [c.n for c in answer.citations] == [1, 2]
    assert answer.citations[0].page == 2
    _assert_quotes_verbatim(answer, served)


def test_answer_citing_nothing_valid_falls_back_to_extractive(llm_assistant, fake_llm, served):
    fake_llm.reply = lambda body: (200, "Andelen är 30 procent [99]. Det vet alla.")
    answer = llm_assistant.ask(PAGE2_QUESTION)
    assert len(fake_llm.requests) == 1
    assert answer.mode == "extractive" and not answer.abstained
    assert "[99]" not in answer.answer and "Det vet alla" not in answer.answer
    assert answer.citations
    _assert_quotes_verbatim(answer, served)


def _fallback_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "assistant.pipeline" and r.levelno == logging.WARNING and "LLM" in r.getMessage()]


def test_server_error_falls_back_to_extractive_with_a_warning_and_a_notice(llm_assistant, fake_llm, served, caplog):
    fake_llm.reply = lambda body: (500, "modellen är överbelastad (nyckel: hemlig)")  # a server echoing the key
    with caplog.at_level(logging.WARNING, logger="assistant.pipeline"):
        answer = llm_assistant.ask(PAGE2_QUESTION)
    assert fake_llm.requests  # the LLM was asked (and retried), and failed
    assert answer.mode == "extractive" and not answer.abstained
    assert answer.citations and answer.citations[0].source == "handbok.pdf"
    _assert_quotes_verbatim(answer, served)
    assert answer.notice == LLM_FAILED and answer.to_json()["notice"] == LLM_FAILED
    [warning] = _fallback_warnings(caplog)
    assert "500" in warning and "överbelastad" in warning and fake_llm.base_url in warning
    assert "hemlig" not in caplog.text  # the API key never reaches the log


def test_unreachable_server_falls_back_to_extractive_with_a_warning_and_a_notice(served, embedder, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    settings = served.settings.with_(llm_provider="openai", llm_base_url=f"http://127.0.0.1:{port}/v1",
                                     llm_api_key="hemlig", llm_timeout=5.0)
    with caplog.at_level(logging.WARNING, logger="assistant.pipeline"):
        answer = Assistant(settings, embedder).ask(PAGE2_QUESTION)
    assert answer.mode == "extractive" and answer.citations
    assert answer.notice == LLM_FAILED
    assert "Språkmodellen kunde inte nås" in answer.notice and "citat ur dokumenten" in answer.notice
    [warning] = _fallback_warnings(caplog)
    assert f"127.0.0.1:{port}" in warning
    assert "hemlig" not in caplog.text


def test_a_working_llm_sets_no_notice(llm_assistant, fake_llm, caplog):
    fake_llm.reply = lambda body: (200, f"Minst 30 procent [{number_of(body, '30 procent')}].")
    with caplog.at_level(logging.WARNING, logger="assistant.pipeline"):
        answer = llm_assistant.ask(PAGE2_QUESTION)
    assert answer.mode == "llm" and answer.notice == ""
    assert _fallback_warnings(caplog) == []


def test_llm_refusal_abstains(llm_assistant, fake_llm):
    fake_llm.reply = lambda body: (200, REFUSAL)
    answer = llm_assistant.ask(PAGE2_QUESTION)
    assert answer.abstained and answer.mode == "llm"
    assert answer.citations == []
    assert answer.answer.startswith(REFUSAL)
    assert answer.nearest


def test_irrelevant_question_is_refused_without_asking_the_llm(llm_assistant, fake_llm):
    fake_llm.reply = lambda body: (200, "Surdeg behöver tid [1].")
    answer = llm_assistant.ask("Hur bakar man surdegsbröd?")
    assert answer.abstained
    assert fake_llm.requests == []


# --- grounding, directly ---------------------------------------------------------------------------


@pytest.fixture
def hits(served):
    found, _ = served.assistant.search(PAGE2_QUESTION, k=3)
    return found


def test_ground_ties_each_marker_to_a_verbatim_sentence_of_that_passage(hits):
    n = next(i for i, h in enumerate(hits, start=1) if "30 procent" in h.chunk.text)
    text, citations, refused = llm.ground(f"Andelen är minst 30 procent av de anställda [{n}].", hits)
    assert not refused
    assert text == "Andelen är minst 30 procent av de anställda. [1]"
    [c] = citations
    assert c.source == hits[n - 1].chunk.source and "30 procent" in c.quote
    assert normalize_ws(c.quote) in normalize_ws(hits[n - 1].chunk.text)
    assert verify(c) is None


def test_ground_reuses_a_number_for_the_same_quote(hits):
    n = next(i for i, h in enumerate(hits, start=1) if "30 procent" in h.chunk.text)
    text, citations, _ = llm.ground(f"Minst 30 procent [{n}]. Alltså 30 procent av de anställda [{n}].", hits)
    assert len(citations) == 1
    assert re.findall(r"\[(\d+)\]", text) == ["1", "1"]


def test_ground_with_out_of_range_markers_keeps_nothing(hits):
    text, citations, refused = llm.ground("Något [0]. Något annat [4]. Utan markör.", hits)
    assert (text, citations, refused) == ("", [], False)


@pytest.mark.parametrize("gap", [" ", ""])
def test_ground_marker_after_the_full_stop_belongs_to_that_sentence(hits, gap):
    """LLMs often write "Mening. [1]" or "Mening.[1]": the marker must not move to the next sentence."""
    n = next(i for i, h in enumerate(hits, start=1) if "30 procent" in h.chunk.text)
    m = next(i for i in range(1, len(hits) + 1) if i != n)
    text, citations, _ = llm.ground(
        f"Minst 30 procent av de anställda ska ha funktionsnedsättning.{gap}[{n}] Något annat gäller också.{gap}[{m}]",
        hits,
    )
    assert text == "Minst 30 procent av de anställda ska ha funktionsnedsättning. [1] Något annat gäller också. [2]"
    assert citations[0].source == hits[n - 1].chunk.source and "30 procent" in citations[0].quote
    assert normalize_ws(citations[1].quote) in normalize_ws(hits[m - 1].chunk.text)


def test_refusal_is_recognised_inside_a_reply(hits):
    text, citations, refused = llm.ground(f"Tyvärr. {REFUSAL}", hits)
    assert refused and text == REFUSAL and citations == []


def test_unknown_provider_is_refused_by_the_settings(served):
    """A typo used to give extractive answers forever; now it is an error before any question is asked."""
    with pytest.raises(SettingsError, match=r"^ASSISTANT_LLM_PROVIDER='acme' .*openai eller ollama"):
        served.settings.with_(llm_provider="acme")


def test_generate_returns_the_servers_text(served, fake_llm, hits):
    fake_llm.reply = lambda body: (200, "Ett svar [1].")
    settings = served.settings.with_(llm_provider="openai", llm_base_url=fake_llm.base_url)
    assert llm.generate(settings, "Fråga?", hits, []) == "Ett svar [1]."
    fake_llm.reply = lambda body: (500, "")
    with pytest.raises(llm.LLMError):
        llm.generate(settings, "Fråga?", hits, [])
