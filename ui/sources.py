"""What the chat shows for one answer: the message text with linked [n] markers, the sources panel
(quote highlighted within its passage, a link to the document) and notices for outdated sources.

A turn is a ``ChatTurn`` (kept in per-session gr.State), built by ``turn_from_answer``. The HTML comes
from the Jinja2 templates in ui/templates/, autoescaped: corpus text is never markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from assistant.pipeline import REFUSAL_HINT
from assistant.settings import Settings
from assistant.types import Answer, Citation, Dated, NearestPassage
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


def stale_notices(dated: Dated, stale_after_days: int, today: date | None = None) -> list[str]:
    """Why a document's facts may be out of date: its validity period has passed, or it was last
    checked (or, without a check date, is valid as of) more than ``stale_after_days`` ago."""
    today = today or date.today()
    notices = []
    valid_until = parse_date(dated.valid_until)
    if valid_until and valid_until < today:
        notices.append(f"Uppgifterna gällde till {valid_until.isoformat()}; giltighetstiden har passerat.")
    checked = parse_date(dated.last_checked)
    as_of = parse_date(dated.valid_as_of)
    if checked and (today - checked).days > stale_after_days:
        notices.append(f"Uppgifterna kontrollerades senast {checked.isoformat()}, för mer än "
                       f"{stale_after_days} dagar sedan, och kan vara inaktuella.")
    elif not checked and as_of and (today - as_of).days > stale_after_days:
        notices.append(f"Uppgifterna avser läget {as_of.isoformat()}, för mer än {stale_after_days} dagar "
                       f"sedan, och kan vara inaktuella.")
    return notices


# --- a turn -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownSource:
    """A cited passage, or one a refusal offers, with what the chat adds: its link and stale notices."""

    passage: Citation | NearestPassage
    url: str | None
    notices: tuple[str, ...] = ()

    @property
    def quote(self) -> str:
        return self.passage.quote if isinstance(self.passage, Citation) else ""

    @property
    def context(self) -> str:
        """The passage shown around the quote; a citation without its chunk shows the quote alone."""
        p = self.passage
        return (p.context or p.quote) if isinstance(p, Citation) else p.text

    def highlight(self) -> tuple[str, str, str, str]:
        return quote_parts(self.context, self.quote)

    def link_text(self) -> str:
        p = self.passage
        suffix = p.source.lower().rsplit(".", 1)[-1]
        if p.page and suffix == "pdf":
            return f"Öppna dokumentet på sidan {p.page}"
        if suffix == "docx":
            return "Ladda ner dokumentet (DOCX)"  # browsers cannot show DOCX; it is served as a download
        return "Öppna hela dokumentet"

    @classmethod
    def of(cls, passage: Citation | NearestPassage, settings: Settings, today: date | None = None) -> ShownSource:
        target = passage.quote if isinstance(passage, Citation) else passage.text
        return cls(passage, document_url(settings, passage.corpus_dir, passage.source, passage.page, target),
                   tuple(stale_notices(passage, settings.stale_after_days, today)))


@dataclass(frozen=True)
class ChatTurn:
    """One answer of a conversation, as the chat keeps it per session (and the feedback stores it)."""

    number: int  # 1-based within the conversation; the anchors of its sources carry it
    question: str
    answer: str
    abstained: bool
    mode: str
    citations: tuple[ShownSource, ...] = ()
    nearest: tuple[ShownSource, ...] = ()  # offered by a refusal
    reason: str = ""
    notice: str = ""
    feedback_id: int | None = None  # set once the visitor rated it: a second rating replaces the first

    @property
    def sources(self) -> tuple[ShownSource, ...]:
        """What the panel lists: the citations, or for a refusal the passages offered."""
        return self.nearest if self.abstained else self.citations

    def feedback_sources(self) -> list[dict[str, Any]]:
        """The sources stored with a rating: the citations, or for a refusal the passages offered."""
        if self.citations:
            return [s.passage.to_json() for s in self.citations]
        return [s.passage.to_json() | {"nearest": True} for s in self.nearest]


def turn_from_answer(number: int, answer: Answer, settings: Settings, today: date | None = None) -> ChatTurn:
    """Everything the chat and the feedback need about one answer; the citations and passages carry
    their documents' dates, so the stale notices need nothing else."""
    return ChatTurn(
        number=number, question=answer.question, answer=answer.answer, abstained=answer.abstained,
        mode=answer.mode, reason=answer.reason, notice=answer.notice,
        citations=tuple(ShownSource.of(c, settings, today) for c in answer.citations),
        nearest=tuple(ShownSource.of(p, settings, today) for p in answer.nearest_passages()),
    )


# --- templates -------------------------------------------------------------------------------------


def anchor(turn_number: int, n: int) -> str:
    return f"kalla-{turn_number}-{n}"


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,  # every template here renders HTML; corpus text is data
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly instead of rendering ""
        trim_blocks=True, lstrip_blocks=True,
        auto_reload=False,  # shipped files: no mtime check of the template on every rendered marker
    )
    env.globals["anchor"] = anchor
    return env


def _message() -> Any:
    """The macros of message.html (each returns Markup)."""
    return _templates().get_template("message.html").module


# --- the chat message -----------------------------------------------------------------------------


def message_words(turn: ChatTurn) -> list[str]:
    """The bot message of an answered turn as words, each [n] already a link, for streaming."""
    titles = {s.passage.n: s.passage.title for s in turn.citations}
    out = []
    for word in turn.answer.split():  # source line breaks are not answer breaks
        m = _MARKER.fullmatch(word)
        n = int(m.group(1)) if m else None
        out.append(str(_message().cite_ref(turn.number, n, titles[n]) if n in titles else escape(word)))
    return out


def message_footer(turn: ChatTurn) -> str:
    """Below the answer: short source list (to reach them on a narrow screen) and any outdated-source note."""
    macros = _message()
    parts: list[Markup] = []
    if turn.notice:  # e.g. the LLM failed and quoted sentences are shown instead
        parts.append(macros.notice(turn.notice))
    if any(s.notices for s in turn.citations):
        parts.append(macros.stale_warning())
    if turn.citations:
        parts.append(macros.source_list(turn))
    return "\n\n".join(parts)


def notice_message(text: str) -> str:
    """A bot message that is only a notice (e.g. the index's Chroma server cannot be reached): escaped text."""
    return str(_message().notice(text))


def refusal_message(turn: ChatTurn) -> str:
    return str(_message().refusal(turn, REFUSAL_HEADING, REFUSAL_HINT))


def full_message(turn: ChatTurn) -> str:
    if turn.abstained:
        return refusal_message(turn)
    footer = message_footer(turn)
    return " ".join(message_words(turn)) + (f"\n\n{footer}" if footer else "")


# --- the sources panel ----------------------------------------------------------------------------


def quote_parts(context: str, quote: str) -> tuple[str, str, str, str]:
    """(before, quote, after, elsewhere): the passage split around the quote, matched with flexible
    whitespace. A quote from another part of the file is ``elsewhere``, shown after the passage rather
    than hiding the evidence. Plain text: the template escapes it."""
    if not quote:
        return context, "", "", ""
    pattern = r"\s+".join(re.escape(w) for w in quote.split())
    m = re.search(pattern, context)
    if not m:
        return context, "", "", quote
    return context[: m.start()], m.group(0), context[m.end():], ""


def sources_html(turns: list[ChatTurn]) -> str:
    """The panel: newest answer first and open; earlier ones folded but still reachable from their [n]."""
    return _templates().get_template("sources.html").render(turns=turns)
