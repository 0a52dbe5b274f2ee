"""Extractive answers (the default, no LLM): the chosen sentences, each with an inline marker [n] pointing
at a numbered, verbatim quote. No sentence is written by the machine, so nothing can be claimed that a
person cannot open and read. Which sentences are chosen is assistant.policy's decision."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from assistant.lexical import STOPWORDS, stem
from assistant.text import normalize_ws, without_source_notes, words
from assistant.types import Citation, Hit

REFUSAL = "Underlaget svarar inte på det."
REFUSAL_HINT = "De närmaste avsnitten i underlaget finns nedan; de kan ge ledtrådar men besvarar inte frågan."

_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


class Quoted(Protocol):
    """A sentence to quote: its verbatim text and the passage it comes from (policy.Candidate)."""

    text: str
    hit: Hit


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1}


def display_sentence(sentence: str) -> str:
    """The sentence as shown in the answer: without list markers and "(källa: …)" notes; a quoted list
    reads "De tolv kommunerna var: Helsingborg; Hudiksvall; …". The citation keeps the verbatim text."""
    lines = [line for line in sentence.split("\n") if line.strip()]
    if len(lines) > 1 and any(_LIST_MARK.match(line) for line in lines):
        lead = [] if _LIST_MARK.match(lines[0]) else [normalize_ws(without_source_notes(lines.pop(0)))]
        items = [normalize_ws(without_source_notes(_LIST_MARK.sub("", line))).rstrip(".;,") for line in lines]
        return " ".join([*lead, "; ".join(i for i in items if i)])
    text = _LIST_MARK.sub("", sentence)
    return normalize_ws(without_source_notes(text))


def compose(chosen: Sequence[Quoted]) -> tuple[str, list[Citation]]:
    citations: list[Citation] = []
    parts: list[str] = []
    for n, s in enumerate(chosen, start=1):
        citations.append(Citation.from_hit(n, s.hit, s.text))
        shown = display_sentence(s.text)
        if shown and shown[-1] not in ".!?:":
            shown += "."
        parts.append(f"{shown} [{n}]")
    return " ".join(parts), citations


def refusal_text(nearest: list[Hit], reason: str = "") -> str:
    lines = [REFUSAL, *([reason] if reason else []), *([REFUSAL_HINT] if nearest else [])]
    lines.extend(f"- {h.chunk.location()}" for h in nearest)
    return "\n".join(lines)
