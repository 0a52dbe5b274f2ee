"""Optional LLM answers through LangChain chat models (any OpenAI-compatible endpoint, or Ollama).

The model only rephrases: it must cite passages with [n]; every sentence without a valid marker is
dropped, and each marker is tied to the verbatim sentence of that passage that best supports it. An
answer with no valid citation falls back to the extractive answer, so the LLM never adds an uncited claim.
"""

from __future__ import annotations

import re

from assistant.answer import REFUSAL, content_stems
from assistant.settings import Settings
from assistant.text import split_sentences
from assistant.types import Citation, Hit

SYSTEM = (
    "Du är Samverkansassistenten. Svara på svenska, kort och sakligt, ENDAST utifrån de numrerade "
    "utdragen. Varje mening ska sluta med hänvisning till utdraget den bygger på, till exempel [2]. "
    "Ange alltid vilken period belopp och gränser gäller för. Om utdragen inte besvarar frågan, svara "
    f"exakt: \"{REFUSAL}\""
)
_MARKER = re.compile(r"\[(\d+)\]")
_MARKERS_AFTER_STOP = re.compile(r"([.!?…])((?:\s*\[\d+\])+)")  # "Mening. [1]": the marker is that sentence's


class LLMError(RuntimeError):
    pass


def chat_model(settings: Settings):
    provider = settings.llm_provider.lower()
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=settings.llm_model or "gpt-4o-mini",
            base_url=settings.llm_base_url or None,
            api_key=settings.llm_api_key or "not-needed",
            timeout=settings.llm_timeout,
            max_retries=1,
            temperature=0,
        )
    if provider == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(
            model=settings.llm_model or "llama3.1",
            base_url=settings.llm_base_url or None,
            temperature=0,
        )
    raise LLMError(f"okänd LLM-leverantör {settings.llm_provider!r} (använd openai eller ollama)")


def build_messages(question: str, hits: list[Hit], history: list[str]) -> list[tuple[str, str]]:
    excerpts = "\n\n".join(
        f"[{i}] {h.chunk.title} – {h.chunk.section}\n{h.chunk.text}" for i, h in enumerate(hits, start=1)
    )
    earlier = "".join(f"Tidigare fråga: {q}\n" for q in history)
    return [("system", SYSTEM), ("human", f"Utdrag:\n\n{excerpts}\n\n{earlier}Fråga: {question}")]


def generate(settings: Settings, question: str, hits: list[Hit], history: list[str], model=None) -> str:
    try:
        model = model or chat_model(settings)
        reply = model.invoke(build_messages(question, hits, history))
    except Exception as exc:  # configuration, network, auth, timeouts: all mean "no LLM answer"
        reason = str(exc)
        if settings.llm_api_key:  # a server may echo the key in its error; the message ends up in the log
            reason = reason.replace(settings.llm_api_key, "***")
        raise LLMError(f"LLM-anropet misslyckades: {reason}") from None
    return str(reply.content if hasattr(reply, "content") else reply)


def ground(text: str, hits: list[Hit]) -> tuple[str, list[Citation], bool]:
    """Keep cited sentences only and tie each marker to a verbatim quote; renumber in order of use.

    Returns (answer, citations, refused)."""
    if REFUSAL.rstrip(".") in text:
        return REFUSAL, [], True
    numbers: dict[tuple[int, str], int] = {}
    citations: list[Citation] = []
    kept: list[str] = []
    text = _MARKERS_AFTER_STOP.sub(lambda m: m.group(2) + m.group(1), text.strip())  # → "Mening [1]."
    for sentence in split_sentences(text):
        refs = [int(m) for m in _MARKER.findall(sentence) if 1 <= int(m) <= len(hits)]
        if not refs:
            continue  # an uncited sentence is never shown
        bare = _MARKER.sub("", sentence).strip()
        new_refs = []
        for ref in dict.fromkeys(refs):
            hit = hits[ref - 1]
            quote = best_quote(bare, hit)
            key = (ref, quote)
            if key not in numbers:
                numbers[key] = len(citations) + 1
                citations.append(Citation.from_hit(numbers[key], hit, quote))
            new_refs.append(numbers[key])
        bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
        kept.append(bare + " " + "".join(f"[{n}]" for n in new_refs))
    return " ".join(kept), citations, False


def best_quote(sentence: str, hit: Hit) -> str:
    terms = content_stems(sentence)
    options = split_sentences(hit.chunk.text) or [hit.chunk.text]
    return max(options, key=lambda s: len(terms & content_stems(s)) / (1 + 0.01 * len(s)))
