"""The answer policy: do the documents answer the question, and with which sentences?

This is the one place where that is decided. The learned relevance model (assistant.crossencoder) reads
each candidate sentence of the best retrieved passages together with the question and gives the
probability that the sentence answers it. From those probabilities:

* the passages are reordered (``rerank``): the fused retrieval score plus the evidence of the passage's
  best sentence;
* the question is answered only when some sentence is judged to answer it (``ANSWER_THRESHOLD``);
  otherwise the assistant says the documents do not tell, and shows the nearest passages;
* the answer quotes the answering sentence first, then at most a few more sentences that answer too or
  that continue it in the same passage, within a word budget.

Every constant below says where it was chosen; the figures are in the README ("Answer policy"). They are
the same for every corpus: nothing here may be tuned per corpus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from assistant.answer import display_sentence
from assistant.text import is_heading_like, split_sentences, without_source_notes, words
from assistant.types import Hit

# --- the constants -----------------------------------------------------------------------------------
# All chosen together with benchmarks/tune_policy.py on four dev sets at once (eval, SweQUAD-MC dev over all
# 498 passages, SQuAD-sv dev articles 150+150, SweFAQ dev) with the relevance model in fp32: the objective
# is the mean over sets of key facts + refusal recall - false refusals (0.705 as shipped; the figure after
# each alternative below is that objective). Per-set figures: README "Answer policy".
PASSAGES = 8  # passages whose sentences are read; 6: 0.699, 10: 0.697 (and 59-word SweFAQ answers)
DENSE_READS = 2  # the best of the fused top PASSAGES + READ_EXTRA by e5's cosine (DENSE_READS) and by BM25
LEXICAL_READS = 2  # (LEXICAL_READS) are always read, in place of the weakest fused ones (see read_passages).
READ_EXTRA = 4  # tune_policy records of the fused top 12 read whole (2026-12-03), dense / lexical reads 0 / 0 →
#   2 / 0 → 2 / 2: SweQUAD-MC dev key facts .873 → .881 → .897, nDCG@10 .879 → .885 → .888; holdout key facts
#   .873 → .873 → .879; SQuAD-sv answerable refused .007 → .007 → 0 (all 1 843: key facts .866 → .866 → .865,
#   answerable refused .011 → .011 → .010, the rest equal); eval and SweFAQ dev unchanged. 1 / 2 is
#   the same as 2 / 2, 0 / 2 loses SweQUAD-MC dev's nDCG gain, 2-3 / 3 and 2 / 4 refuse one SQuAD-sv
#   unanswerable question fewer; READ_EXTRA 2 and 4 alike. 2 dense, not 1: the chat's starter "Vilka kommuner
#   var med i utvecklingsnätverket?" has its list 10th fused and 2nd dense
MAX_PAIRS = 36  # (question, sentence) pairs per question, the latency budget. 48 → 36 (2026-12-02): the same
# figures on all four sets (records cut from a 48-pair collection), p95 pairs 48 → 36;
# 32: SweQUAD-MC key facts .881 → .865
# The model is conservative (a clear answer often scores 0.2-0.5) and separates answering from merely
# plausible sentences far better than answerable from unanswerable questions (SQuAD-sv val AUC 0.65):
# higher thresholds refuse answerable questions faster than unanswerable ones.
ANSWER_THRESHOLD = 0.005  # the best sentence must reach this; 0.01: 0.683 (SweFAQ refused 1.8 % → 7.3 %)
SUPPORT_THRESHOLD = 0.03  # a further sentence from anywhere must reach this too …
SUPPORT_MARGIN = 0.7  # … and be within this of the best one; 0.35: 0.689 (eval key facts .765 → .739)
CONTEXT_THRESHOLD = 0.0  # the sentence right after the best one (same passage) joins if there is room
MAX_SENTENCES = 4  # 3: 0.691 (eval key facts .765 → .73); median answers 49-57 words at 4
MAX_WORDS = 70  # stop adding sentences once the answer is this long (the best sentence always stays)
REPEAT_OVERLAP = 0.7  # a sentence whose words are this much in one already chosen, and that adds no figure,
#   is a repeat (a fact told by two documents in other words) and is not quoted again. Eval answers with two
#   sentences sharing 60 % of the shorter's words: 25 before this rule, 25 at 0.8, 20 at 0.7, 13 at 0.6; key
#   facts, refusals and the three CI slices the same at each (2026-12-03): 0.7 is the careful middle
RESTATE_COVER = 0.9  # a sentence holding this much of a chosen one's words (and all its figures), with at
RESTATE_OWN = 0.6  # least this much of its own words in it, tells the same fact more fully ("De tolv kommunerna i
#   SKR:s utvecklingsnätverk 2021–2022 var …" after "De tolv kommunerna i nätverket var …"): it takes the chosen
#   one's place instead of quoting the list twice. Replayed on the tune_policy records (2026-12-03): four eval
#   answers changed (b45, c04: the list no longer twice; a08, a32: one sentence in its fuller words), none in
#   SweQUAD-MC dev or holdout, SQuAD-sv dev or SweFAQ dev; no figure moved
RERANK_WEIGHT = 0.25  # weight of the best sentence's log-odds beside the fused score; mean nDCG@10 of the
# four sets at 0 / 0.25 / 0.5: .837 / .851 / .849 (SweQUAD-MC .849 → .879, SweFAQ .802 → .811, eval .773 → .766)
LEAD_WEIGHT = 1.0  # sentences are taken by log-odds + this × their passage's score (fused + rerank), not by
# log-odds alone: the model reads a sentence without its neighbours, the passage score is the retrieval's
# evidence for the whole passage (retriever + reader scores, as open-domain QA combines them). Key facts at
# 0 → 0.5 / 1.0 (tune_policy records, 2026-12-03): eval 0.756 → 0.798 / 0.824, SQuAD-sv dev 0.860 → 0.887 /
# 0.900 (all 1 843: 0.848 → 0.866), SweQUAD-MC holdout 0.861 → 0.867 / 0.873, SweQUAD-MC dev 0.881 → 0.873
# (two lost, one gained); refusals and nDCG unchanged. Ordering only the lead (the others by log-odds):
# eval 0.782, SQuAD-sv 0.887, holdout 0.867, SweQUAD-MC dev 0.881.
MIN_WORDS = 4  # a shorter "sentence" is a stub, never an answer
NUMBER_RULE = True  # a number question needs a sentence stating one; off: 0.656 (eval refusal recall .33 → .22)
YEAR_RULE = True  # a question naming a year is answered by a sentence stating it; see asked_years (2026-12-03)


@dataclass
class Candidate:
    """A sentence that could be quoted, with the model's judgement of it."""

    hit: Hit
    index: int  # position among its chunk's sentences
    text: str  # verbatim from the chunk
    score: float = float("nan")  # P(this sentence answers the question)


class SentenceScorer(Protocol):
    def score(self, question: str, candidates: Sequence[Candidate]) -> np.ndarray:
        """P(answers) for each candidate, in order."""
        ...


@dataclass
class Decision:
    answer: bool
    sentences: list[Candidate]  # in the order they are shown: the answering sentence first
    hits: list[Hit]  # the passages in their final order
    reason: str = ""  # why not, when more can be said than "the documents do not tell"
    best: float = 0.0  # the best sentence score (for evaluation and calibration)
    candidates: list[Candidate] = field(default_factory=list)


# --- which sentences can answer at all ------------------------------------------------------------------

_TABLE_ROW = re.compile(r"^\s*\|")
_LIST_STUB = re.compile(r":\s*$")
# Sentences about the document itself ("Den här vägledningen riktar sig till …") never answer a question.
_ABOUT_DOCUMENT = re.compile(
    r"^(det här|den här|detta|denna|här) (dokument\w*|vägledning\w*|text\w*|avsnitt\w*|kapit\w*|"
    r"handbok\w*|sammanställning\w*|ordlista\w*|rapport\w*|fall(et)?|exempl\w*|bilag\w*|beskrivs)\b",
    re.I,
)
# Nor do notes on when the text was checked ("Uppgifterna kontrollerades senast 2026-11-28.", "Senast
# uppdaterad …"): the document's dates are shown beside every source already. Eval nDCG@10 0.756 → 0.761
# (passages were reranked up by such a note), nothing else moved; no other dev set has one (2026-12-03).
_RECORD_NOTE = re.compile(
    r"^senast (uppdaterad|ändrad|granskad|kontrollerad|reviderad)\b"
    r"|^(\w+ )?(uppgift\w*|information\w*|sidan|texten|dokumentet|innehållet)\b[^.]{0,60}?\b"
    r"(kontrollerades|uppdaterades|granskades|reviderades|ändrades|verifierades) senast\b"
    r"|\bavser läget (per|den)\b",
    re.I,
)


def can_answer(sentence: str) -> bool:
    """False for title lines, headings, list stubs ("Krav:"), table rows, sentences about the document and notes
    on when it was checked."""
    text = sentence.strip()
    return not (
        len(words(text)) < MIN_WORDS
        or is_heading_like(text)
        or _TABLE_ROW.match(text)
        or _LIST_STUB.search(text)
        or _ABOUT_DOCUMENT.match(text)
        or _RECORD_NOTE.search(text)
    )


def read_passages(hits: Sequence[Hit], passages: int | None = None) -> list[Hit]:
    """The passages whose sentences are read: the fused top ``passages``, except that the DENSE_READS best
    by e5's cosine and the LEXICAL_READS best by BM25 of the fused top ``passages`` + READ_EXTRA are always
    among them, each in place of the weakest fused passage that is not one of them. Fusion can push the
    passage a question is about down: behind passages that repeat its words when BM25 prefers those ("Vilka
    kommuner var med" for "Vilka kommuner var med i utvecklingsnätverket?" was 10th fused, 2nd by cosine), or
    behind passages near in meaning when the words that matter are rare. Each retriever's best are read, as
    rerankers read the union of their retrievers' heads; it costs no more pairs than reading the fused
    ones it replaces."""
    passages = PASSAGES if passages is None else passages
    head = list(hits[:passages])
    pool = list(hits[: passages + READ_EXTRA])
    dense = sorted((h for h in pool if h.dense is not None), key=lambda h: -h.dense)[:max(DENSE_READS, 0)]
    lexical = sorted((h for h in pool if h.lexical is not None), key=lambda h: -h.lexical)[:max(LEXICAL_READS, 0)]
    kept = {h.chunk.id: h for h in dense + lexical}
    for cid, h in kept.items():
        if any(w.chunk.id == cid for w in head):
            continue
        weakest = next((w for w in reversed(head) if w.chunk.id not in kept), None)
        if weakest is None:
            break
        head[head.index(weakest)] = h
    order = {h.chunk.id: i for i, h in enumerate(hits)}
    return sorted(head, key=lambda h: order[h.chunk.id])


def candidates(hits: Sequence[Hit], passages: int | None = None, max_pairs: int | None = None) -> list[Candidate]:
    """The answer-capable sentences of the top passages, best passage first, at most ``max_pairs``.

    A list whose items are too short to answer alone ("- Helsingborg") answers as a whole: its lead-in
    line and items become one candidate, a verbatim span of the passage (see ``_list_blocks``)."""
    max_pairs = MAX_PAIRS if max_pairs is None else max_pairs
    out: list[Candidate] = []
    for hit in read_passages(hits, passages):
        units = split_sentences(hit.chunk.text)
        found = [Candidate(hit, i, u) for i, u in enumerate(units) if can_answer(u)]
        found += _list_blocks(hit, units)
        for c in sorted(found, key=lambda c: c.index):
            out.append(c)
            if len(out) >= max_pairs:
                return out
    return out


_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def _list_blocks(hit: Hit, units: list[str]) -> list[Candidate]:
    """Runs of two or more list items, some too short to answer alone, as one candidate each: from the
    lead-in line ("De tolv kommunerna var:") through the last item that fits in MAX_WORDS."""
    text = hit.chunk.text
    spans, pos = [], 0
    for u in units:
        start = text.find(u, pos)
        spans.append((start, start + len(u)))
        pos = start + len(u)
    blocks, i = [], 0
    while i < len(units):
        if not _LIST_ITEM.match(units[i]):
            i += 1
            continue
        j = i
        while j < len(units) and _LIST_ITEM.match(units[j]):
            j += 1
        if j - i >= 2 and not all(can_answer(u) for u in units[i:j]):
            first = i - 1 if i > 0 and units[i - 1].rstrip().endswith(":") else i
            last, size = first, 0
            while last < j and size + len(words(units[last])) <= MAX_WORDS:
                size += len(words(units[last]))
                last += 1
            if last - i >= 2:
                blocks.append(Candidate(hit, first, text[spans[first][0]:spans[last - 1][1]]))
        i = j
    return blocks


# --- passages ------------------------------------------------------------------------------------------


def log_odds(p: float, eps: float = 1e-4) -> float:
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def rerank(hits: Sequence[Hit], scored: Sequence[Candidate], weight: float | None = None) -> list[Hit]:
    """Passages whose sentences were read, by fused score + weight · log-odds of their best sentence;
    the rest keep their fused order behind them (a passage with no answer-capable sentence counts as its
    fused score plus the log-odds of the lowest probability, so it sinks but is not lost)."""
    weight = RERANK_WEIGHT if weight is None else weight
    best: dict[str, float] = {}
    for c in scored:
        key = c.hit.chunk.id
        best[key] = max(best.get(key, 0.0), c.score)
    read = {c.hit.chunk.id for c in scored} | {h.chunk.id for h in read_passages(hits)}
    head = [h for h in hits if h.chunk.id in read]
    tail = [h for h in hits if h.chunk.id not in read]
    for h in head:
        h.score = h.score + weight * log_odds(best.get(h.chunk.id, 0.0))
    head.sort(key=lambda h: -h.score)
    ordered = head + tail
    for rank, h in enumerate(ordered, start=1):
        h.rank = rank
    return ordered


# --- the decision ----------------------------------------------------------------------------------------


def decide(hits: list[Hit], scored: list[Candidate], question: str = "") -> Decision:
    """Answer with the best sentence (and what belongs with it), or refuse. ``hits`` are the reranked
    passages: a sentence is taken by its log-odds plus LEAD_WEIGHT × its passage's score."""
    if not scored:
        return Decision(False, [], hits)
    top = max(c.score for c in scored)
    if top < ANSWER_THRESHOLD:
        return Decision(False, [], hits, best=top, candidates=scored)
    passage = {h.chunk.id: h.score for h in hits}

    def lead(c: Candidate) -> float:
        return log_odds(c.score) + LEAD_WEIGHT * passage.get(c.hit.chunk.id, c.hit.score)

    ranked = sorted((c for c in scored if c.score >= ANSWER_THRESHOLD), key=lambda c: -lead(c))
    best = ranked[0]
    kind = asked_number(question) if NUMBER_RULE else None
    years = asked_years(question) if YEAR_RULE else []

    def fits(c: Candidate) -> bool:
        return ((not kind or states_number(kind, c.text))
                and all(states_year(year, c.text) for year in years))

    if not fits(best):
        # "Vad kostar …?" answered by a sentence without an amount, or "… 1912?" by one about 1921, is a
        # wrong answer in disguise
        best = next((c for c in ranked if fits(c)), None)
        if best is None:
            stated = [c for c in ranked if not kind or states_number(kind, c.text)]
            reason = MISSING_YEAR.format(" och ".join(y.text for y in years)) if stated else MISSING_NUMBER[kind]
            return Decision(False, [], hits, reason, best=top, candidates=scored)
    chosen = [best]

    def size(c: Candidate) -> int:  # as shown: the source notes are not part of the answer
        return len(words(without_source_notes(c.text)))

    budget = size(best)

    def room(c: Candidate) -> bool:
        return len(chosen) < MAX_SENTENCES and budget + size(c) <= MAX_WORDS

    def repeated(c: Candidate) -> bool:
        return any(_repeats(c.text, d.text) for d in chosen)

    follower = next((c for c in scored if c.hit.chunk.id == best.hit.chunk.id and c.index == best.index + 1), None)
    if follower is not None and follower.score >= CONTEXT_THRESHOLD and not repeated(follower) and room(follower):
        chosen.append(follower)
        budget += size(follower)
    floor = max(SUPPORT_THRESHOLD, best.score - SUPPORT_MARGIN)
    for c in ranked:
        if c in chosen or c.score < floor or repeated(c):
            continue
        fuller = next((i for i, d in enumerate(chosen) if _restates(c.text, d.text)), None)
        if fuller is not None:  # the same fact told more fully: quoted once, in the fuller words
            if (fuller or fits(c)) and budget - size(chosen[fuller]) + size(c) <= MAX_WORDS:
                budget += size(c) - size(chosen[fuller])
                chosen[fuller] = c
            continue
        if room(c):
            chosen.append(c)
            budget += size(c)
    rest = sorted(chosen[1:], key=lambda c: (c.hit.rank, c.index))
    return Decision(True, [chosen[0], *rest], hits, best=best.score, candidates=scored)


# --- questions that ask for a number ---------------------------------------------------------------------

# A question that asks for a number - a cost, a duration, a count - is answered only by a sentence that
# states that kind of number. A related sentence with some other figure ("lagen (2022:900) trädde i kraft
# 2023-01-01" for "vad kostar registreringen?") reads like an answer while leaving the question open: a
# wrong answer in disguise, so the assistant says the documents do not tell. Hand-written because the
# answer types are few and this is where an extractive answer most easily misleads.
_NUM_WORD = r"(två|tre|fyra|fem|sex|sju|åtta|nio|tio|elva|tolv|\w+(ton|tio)|\w*(hundra|tusen)\w*|two|three|\w+teen)"
_ASKS = (  # (answer type, question pattern); the first match decides
    ("since", re.compile(r"\b(hur länge (har|hade)|sedan när|how long ha(s|ve))\b", re.I)),  # "sedan 1990"
    ("duration", re.compile(r"\b(hur länge|hur långa?|how long)\b", re.I)),
    ("money", re.compile(
        r"\b(vad kostar|kostar \w+ något|vilket belopp|hur stort belopp|hur mycket (pengar|kostar|stöd|bidrag)|"
        r"hur hög\w* (avgift|sanktionsavgift|ersättning|pris)\w*|how much (money|aid|grant|does)|what does .+ cost)\b",
        re.I)),
    ("count", re.compile(r"\b(hur många|hur mycket|hur stor\w*|hur hög\w*|how many|how much)\b", re.I)),
)
_STATES = {
    "since": re.compile(r"\b(19|20)\d{2}\b"),
    "duration": re.compile(
        rf"\b(\d+|en|ett|{_NUM_WORD})\s+(år|månad\w*|veck\w*|dag\w*|timm\w*|years?|months?|weeks?|days?)\b"
        r"|\bhalvår\w*", re.I),
    "money": re.compile(r"\d[\d\s,.]*\s*(kr\b|kronor|sek\b|euro|eur\b|prisbasbelopp|procent|%|"
                        r"(miljon|miljard)\w* (kronor|euro))|\b(gratis|kostnadsfri\w*|avgiftsfri\w*|ingen avgift)\b",
                        re.I),
    "count": re.compile(rf"\d|\b({_NUM_WORD}|hälften|halva|dubbelt|tredjedel\w*|fjärdedel\w*|procent\w*)\b", re.I),
}
# Figures that are not quantities: dates, years, SFS numbers, chapters and sections of a law.
_NOT_QUANTITY = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{4}:\d+\b|\b\d+\s*(kap\.|§)|§+\s*\d+|\b(19|20)\d{2}\b|\bartikel \d+", re.I
)



def asked_number(question: str) -> str | None:
    """The kind of number the question asks for ("since", "duration", "money", "count"), or None."""
    return next((kind for kind, pattern in _ASKS if pattern.search(question)), None)


def states_number(kind: str, sentence: str) -> bool:
    text = display_sentence(sentence)  # the display form has no "(källa: S54)" notes
    if kind != "since":
        text = _NOT_QUANTITY.sub(" ", text)
    return bool(_STATES[kind].search(text))



MISSING_NUMBER = {  # why a number question was refused, shown under REFUSAL
    "money": "Frågan gäller ett belopp, men inget av de funna avsnitten anger något.",
    "duration": "Frågan gäller en tidsrymd, men inget av de funna avsnitten anger någon.",
    "since": "Frågan gäller sedan när, men inget av de funna avsnitten anger något årtal.",
    "count": "Frågan gäller ett antal eller en storlek, men inget av de funna avsnitten anger någon siffra.",
}


# --- questions that name a year ----------------------------------------------------------------------------

# A question about a year is answered only by a sentence that states that year, a period holding it
# ("2024–2025", "1800-talet") or a start on or before it ("från och med 2022-02-01", for 2024). Adversarial
# questions swap a year for a near one ("Scotland Act 2002" against a text about 2012, "1500-talet" against
# "1600-talet"), and the relevance model reads the swapped sentence as an answer. A year after "före",
# "efter", "sedan" … bounds a period instead of naming one, and one in brackets is an aside: neither asks for
# anything. Chosen on the four dev sets' tune_policy records (2026-12-03): SQuAD-sv dev unanswerable refused
# 0.7 → 2.7 %, nothing else moved (the eval set's year questions are answered by sentences stating the year).


@dataclass(frozen=True)
class Year:
    text: str  # as asked: "1912", "1800-talet"
    first: int
    last: int


# "2022:s" is the Swedish genitive of a year, "1990s" and "1800-talet" a decade or century.
_YEAR = re.compile(r"(?<![\d:/])(1[5-9]\d\d|20\d\d)(-tal\w*|:s\b|s\b)?(?![\d:/])", re.I)
_BOUND = re.compile(r"\b(före|innan|efter|sedan|från|till|tills|fram till|senast|mellan|t\.o\.m\.|fr\.o\.m\.|"
                    r"before|after|since|from|until|by)\s*$", re.I)
_PERIOD = re.compile(r"(?<![\d:/])(1[5-9]\d\d|20\d\d)(?:-\d\d-\d\d)?\s*[–—-]\s*(1[5-9]\d\d|20\d\d|\d\d)(?![\d:/])")
_AMOUNT = re.compile(r"\s*(kr\b|kronor|sek\b|euro|eur\b|dollar|procent|%|st\b|stycken|personer|anställda|"
                     r"deltagare|invånare|meter|m\b|km|kg|ton\b|liter|timmar|dagar|år\b|exemplar)", re.I)
_OPEN_START = re.compile(r"\b(från och med|fr\.o\.m\.|sedan|från|since|from)\s+(?:\d{1,2}\s+\w+\s+)?"
                         r"(1[5-9]\d\d|20\d\d)(?![\d:/])", re.I)


def asked_years(question: str) -> list[Year]:
    """The years (or decades, centuries: "1800-talet") a question names, not those that bound a period."""
    out = []
    for m in _YEAR.finditer(question):
        before = question[: m.start()]
        if (_BOUND.search(before) or before.count("(") > before.count(")")  # an aside: "… (6 oktober 2021)"
                or _AMOUNT.match(question, m.end())):  # "1500 kronor" is an amount
            continue
        year, suffix = int(m.group(1)), (m.group(2) or "").lower()
        span = 1 if suffix in ("", ":s") else (100 if year % 100 == 0 else 10)
        out.append(Year(m.group(0), year, year + span - 1))
    return out


def states_year(year: Year, sentence: str) -> bool:
    text = display_sentence(sentence)  # a note's date says where a fact is from, not when it held
    for m in _YEAR.finditer(text):
        if year.first <= int(m.group(1)) <= year.last:
            return True
    for m in _PERIOD.finditer(text):
        first, end = int(m.group(1)), m.group(2)
        last = int(end) if len(end) == 4 else first // 100 * 100 + int(end)
        if first <= year.last and year.first <= last:
            return True
    return any(int(m.group(2)) <= year.first for m in _OPEN_START.finditer(text))


MISSING_YEAR = "Frågan gäller {}, men inget av de funna avsnitten säger något om det året."


def _restates(candidate: str, chosen: str) -> bool:
    """``candidate`` says what ``chosen`` says and a little more: nearly all of ``chosen``'s words and all its
    figures are in it, and most of its own words are in ``chosen`` (the other side of :func:`_repeats`; a
    sentence with much of its own to tell is quoted beside ``chosen`` instead). Source notes left out."""
    candidate, chosen = without_source_notes(candidate), without_source_notes(chosen)
    wc, wd = set(words(candidate)), set(words(chosen))
    if not wc or not wd or not set(re.findall(r"\d+", chosen)) <= set(re.findall(r"\d+", candidate)):
        return False
    shared = len(wc & wd)
    return shared / len(wd) >= RESTATE_COVER and shared / len(wc) >= RESTATE_OWN


def _repeats(candidate: str, chosen: str) -> bool:
    """``candidate`` tells nothing that ``chosen`` does not (a fact repeated in two documents): nearly all its
    words are in ``chosen`` and it brings no figure of its own ("700 000 kronor från 2022" adds a year to
    "700 000 kronor"; "615 312 kronor" is another fact). The source notes are left out: a note's words and
    dates say where a fact comes from, not what it is. One-sided on purpose: the longer sentence chosen
    first makes the shorter repeat redundant, not the other way round."""
    candidate, chosen = without_source_notes(candidate), without_source_notes(chosen)
    wc, wd = set(words(candidate)), set(words(chosen))
    if not wc or not wd:
        return False
    adds_figure = not set(re.findall(r"\d+", candidate)) <= set(re.findall(r"\d+", chosen))
    return not adds_figure and len(wc & wd) / len(wc) >= REPEAT_OVERLAP
