"""What the chat shows for one answer: the message text with linked [n] markers, the sources panel
(quote highlighted within its passage, a link to the document) and notices for outdated sources.

A turn is a plain dict (JSON-safe, kept in per-session gr.State), built by ``turn_from_answer``.
"""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any

from assistant.answer import REFUSAL_HINT
from assistant.settings import Settings
from assistant.types import Answer
from ui.documents import document_url

REFUSAL_HEADING = "Underlaget svarar inte på det."
_MARKER = re.compile(r"\[(\d+)\]")


# --- outdated sources ---------------------------------------------------------------------------


def parse_date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def stale_notices(meta: dict[str, Any], stale_after_days: int, today: date | None = None) -> list[str]:
    """Why a document's facts may be out of date: its validity period has passed, or it was last
    checked (or, without a check date, is valid as of) more than ``stale_after_days`` ago."""
    today = today or date.today()
    notices = []
    valid_until = parse_date(meta.get("valid_until"))
    if valid_until and valid_until < today:
        notices.append(f"Uppgifterna gällde till {valid_until.isoformat()}; giltighetstiden har passerat.")
    checked = parse_date(meta.get("last_checked"))
    as_of = parse_date(meta.get("valid_as_of"))
    if checked and (today - checked).days > stale_after_days:
        notices.append(f"Uppgifterna kontrollerades senast {checked.isoformat()}, för mer än "
                       f"{stale_after_days} dagar sedan, och kan vara inaktuella.")
    elif not checked and as_of and (today - as_of).days > stale_after_days:
        notices.append(f"Uppgifterna avser läget {as_of.isoformat()}, för mer än {stale_after_days} dagar "
                       f"sedan, och kan vara inaktuella.")
    return notices


# --- building a turn ----------------------------------------------------------------------------


def turn_from_answer(number: int, answer: Answer, settings: Settings, documents: dict[str, dict],
                     today: date | None = None) -> dict[str, Any]:
    """Everything the UI and the feedback need about one answer, as JSON-safe data.

    ``documents`` are the index manifest entries: they supply front matter the citation does not
    carry (valid_until) and dates for the nearest passages of a refusal."""
    by_file = {(e.get("corpus_dir", ""), e.get("source", "")): e.get("metadata") or {} for e in documents.values()}

    def meta_for(corpus_dir: str, source: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {**by_file.get((corpus_dir, source), {}), **{k: v for k, v in extra.items() if v}}

    citations = []
    for c in answer.citations:
        meta = meta_for(c.corpus_dir, c.source, {"valid_as_of": c.valid_as_of, "last_checked": c.last_checked})
        citations.append({
            "n": c.n, "source": c.source, "title": c.title, "section": c.section, "page": c.page,
            "quote": c.quote, "context": c.context or c.quote, "corpus_dir": c.corpus_dir,
            "url": document_url(settings, c.corpus_dir, c.source, c.page, c.quote),
            "notices": stale_notices(meta, settings.stale_after_days, today),
        })
    nearest = []
    for i, hit in enumerate(answer.nearest if answer.abstained else [], start=1):
        ch = hit.chunk
        meta = meta_for(ch.corpus_dir, ch.source, ch.metadata or {})
        nearest.append({
            "n": i, "source": ch.source, "title": ch.title, "section": ch.section, "page": ch.page,
            "quote": "", "context": ch.text, "corpus_dir": ch.corpus_dir,
            "url": document_url(settings, ch.corpus_dir, ch.source, ch.page, ch.text),
            "notices": stale_notices(meta, settings.stale_after_days, today),
        })
    return {
        "number": number, "question": answer.question, "answer": answer.answer, "abstained": answer.abstained,
        "mode": answer.mode, "citations": citations, "nearest": nearest, "feedback_id": None,
        "reason": answer.reason, "notice": answer.notice,
    }


def feedback_sources(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The sources stored with a rating: the citations, or for a refusal the passages offered."""
    keys = ("n", "source", "title", "section", "page", "quote")
    if turn["citations"]:
        return [{k: c[k] for k in keys} for c in turn["citations"]]
    return [{**{k: c[k] for k in keys if k != "quote"}, "nearest": True} for c in turn["nearest"]]


# --- the chat message -----------------------------------------------------------------------------


def anchor(turn_number: int, n: int) -> str:
    return f"kalla-{turn_number}-{n}"


def message_words(turn: dict[str, Any]) -> list[str]:
    """The bot message of an answered turn as words, each [n] already a link, for streaming."""
    titles = {c["n"]: c["title"] for c in turn["citations"]}
    out = []
    for word in html.escape(turn["answer"], quote=False).split():  # source line breaks are not answer breaks
        m = _MARKER.fullmatch(word)
        if m and int(m.group(1)) in titles:
            n = int(m.group(1))
            # the chatbot's sanitizer drops aria-label; hidden text gives screen readers "källa 1"
            word = (f'<a class="cite-ref" href="#{anchor(turn["number"], n)}" '
                    f'title="Källa {n}: {html.escape(titles[n])}">'
                    f'[<span class="visually-hidden">källa </span>{n}]</a>')
        out.append(word)
    return out


def message_footer(turn: dict[str, Any]) -> str:
    """Below the answer: short source list (to reach them on a narrow screen) and any outdated-source note."""
    parts = []
    if turn.get("notice"):  # e.g. the LLM failed and quoted sentences are shown instead
        parts.append(f'<div class="stale-note" role="note">ℹ {html.escape(turn["notice"])}</div>')
    if any(c["notices"] for c in turn["citations"]):
        parts.append('<div class="stale-note" role="note">⚠ Minst en av källorna kan vara inaktuell – '
                     "se notisen under Källor.</div>")
    if turn["citations"]:
        items = " · ".join(
            f'<a href="#{anchor(turn["number"], c["n"])}">[{c["n"]}] {html.escape(_where(c))}</a>'
            for c in turn["citations"]
        )
        parts.append(f'<div class="msg-sources"><strong>Källor:</strong> {items}</div>')
    return "\n\n".join(parts)


def refusal_message(turn: dict[str, Any]) -> str:
    items = "".join(
        f'<li><a href="#{anchor(turn["number"], c["n"])}">{html.escape(_where(c))}</a></li>' for c in turn["nearest"]
    )
    listing = f"<p>{html.escape(REFUSAL_HINT)}</p><ul>{items}</ul>" if items else ""
    reason = f"<p>{html.escape(turn['reason'])}</p>" if turn["reason"] else ""
    return f'<div class="refusal" role="note"><strong>{REFUSAL_HEADING}</strong>{reason}{listing}</div>'



def full_message(turn: dict[str, Any]) -> str:
    if turn["abstained"]:
        return refusal_message(turn)
    footer = message_footer(turn)
    return " ".join(message_words(turn)) + (f"\n\n{footer}" if footer else "")


def _where(c: dict[str, Any]) -> str:
    page = f", s. {c['page']}" if c.get("page") else ""
    return " – ".join(p for p in (c["title"], c["section"]) if p) + page


# --- the sources panel ----------------------------------------------------------------------------


def highlight(context: str, quote: str) -> str:
    """The passage, escaped, with the quote wrapped in <mark> (matched with flexible whitespace)."""
    if not quote:
        return html.escape(context)
    pattern = r"\s+".join(re.escape(w) for w in quote.split())
    m = re.search(pattern, context)
    if not m:  # quote from another part of the file: show both rather than hide the evidence
        return f"{html.escape(context)}<br><mark>{html.escape(quote)}</mark>"
    return (html.escape(context[: m.start()]) + "<mark>" + html.escape(m.group(0)) + "</mark>"
            + html.escape(context[m.end():]))


def _source_item(turn_number: int, c: dict[str, Any]) -> str:
    meta = []
    if c["section"]:
        meta.append(f"Avsnitt: {html.escape(c['section'])}")
    if c["page"]:
        meta.append(f"Sida {c['page']}")
    meta.append(f"<code>{html.escape(c['source'])}</code>")
    notices = "".join(f'<p class="stale" role="note">⚠ {html.escape(n)}</p>' for n in c["notices"])
    link = ""
    if c["url"]:
        suffix = c["source"].lower().rsplit(".", 1)[-1]
        if c["page"] and suffix == "pdf":
            what = f"Öppna dokumentet på sidan {c['page']}"
        elif suffix == "docx":
            what = "Ladda ner dokumentet (DOCX)"  # browsers cannot show DOCX; it is served as a download
        else:
            what = "Öppna hela dokumentet"
        link = (f'<a class="open-doc" href="{html.escape(c["url"])}" target="_blank" rel="noopener">{what}'
                f'<span class="visually-hidden"> (öppnas i en ny flik)</span></a>')
    return (
        f'<li class="source" id="{anchor(turn_number, c["n"])}" tabindex="-1">'
        f'<h4><span class="source-n">[{c["n"]}]</span> {html.escape(c["title"])}</h4>'
        f'<p class="where">{" · ".join(meta)}</p>{notices}'
        f'<blockquote class="context">{highlight(c["context"], c["quote"])}</blockquote>{link}</li>'
    )


def sources_html(turns: list[dict[str, Any]]) -> str:
    """The panel: newest answer first and open; earlier ones folded but still reachable from their [n]."""
    if not turns:
        return ('<div class="sources-empty"><p>Här visas källorna till svaren: rubrik, avsnitt, sida och det '
                "citerade stycket i sitt sammanhang.</p><p lang=\"en\">Sources for each answer appear here.</p>"
                "</div>")
    parts = []
    for i, turn in enumerate(reversed(turns)):
        head = f"Svar {turn['number']}: {html.escape(turn['question'])}"
        if turn["abstained"]:
            reason = f" {html.escape(turn['reason'])}" if turn["reason"] else ""
            body = (f'<p class="refusal" role="note"><strong>Underlaget svarar inte på frågan.</strong>{reason} '
                    "De närmaste avsnitten nedan kan ge ledtrådar men besvarar den inte.</p>")
            items = turn["nearest"]
        else:
            body, items = "", turn["citations"]
        listing = "".join(_source_item(turn["number"], c) for c in items)
        parts.append(f'<details class="turn" id="svar-{turn["number"]}"{" open" if i == 0 else ""}>'
                     f"<summary>{head}</summary>{body}<ol class=\"source-list\">{listing}</ol></details>")
    return "".join(parts)
