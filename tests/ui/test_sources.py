"""What the chat shows for an answer: linked markers, highlighted quotes, refusals and stale-source notices."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from assistant.settings import Settings
from assistant.types import Answer, Chunk, Citation, Document, Hit
from ui.sources import (
    full_message,
    message_words,
    quote_parts,
    sources_html,
    stale_notices,
    turn_from_answer,
)

TODAY = date(2026, 11, 28)


def _dated(**dates) -> Document:
    return Document("/corpus", "a.md", "A", **dates)


def test_stale_notices():
    fresh = _dated(valid_as_of="2026-11-01", last_checked="2026-11-28")
    assert stale_notices(fresh, 365, TODAY) == []
    old_check = stale_notices(_dated(valid_as_of="2019-06-01", last_checked="2020-03-01"), 365, TODAY)
    assert len(old_check) == 1 and "2020-03-01" in old_check[0] and "365 dagar" in old_check[0]
    # without a check date the "as of" date counts
    assert "2024-01-01" in stale_notices(_dated(valid_as_of="2024-01-01"), 365, TODAY)[0]
    # a passed validity period is reported even when recently checked
    expired = stale_notices(_dated(valid_until="2026-06-30", last_checked="2026-11-01"), 365, TODAY)
    assert expired == ["Uppgifterna gällde till 2026-06-30; giltighetstiden har passerat."]
    assert stale_notices(_dated(valid_until="2027-01-01", last_checked="2026-11-01"), 365, TODAY) == []
    assert stale_notices(_dated(last_checked="2026-11-01"), 10, TODAY)  # the limit comes from settings
    assert stale_notices(_dated(last_checked="inte ett datum", valid_until=""), 365, TODAY) == []
    assert stale_notices(_dated(last_checked="2020-03-01T12:00:00"), 365, TODAY)  # datetimes are fine


def test_quote_parts_find_the_quote_within_its_passage():
    context = "Första meningen.\nEnligt 4 kap. 18 § LOU får kommunen\nreservera <en> upphandling. Sista meningen."
    before, marked, after, elsewhere = quote_parts(
        context, "Enligt 4 kap. 18 § LOU får kommunen reservera <en> upphandling.")
    assert before == "Första meningen.\n" and after == " Sista meningen." and elsewhere == ""
    assert marked == "Enligt 4 kap. 18 § LOU får kommunen\nreservera <en> upphandling."  # as the passage has it
    assert quote_parts("Annat stycke.", "Citat från annat håll.") == ("Annat stycke.", "", "", "Citat från annat håll.")
    assert quote_parts("a < b", "") == ("a < b", "", "", "")


def test_panel_marks_the_quote_and_escapes_the_passage():
    context = "Första meningen.\nEnligt LOU får kommunen\nreservera <en> upphandling. Sista meningen."
    citation = Citation(1, "a.md", "A", "", None, "Enligt LOU får kommunen reservera <en> upphandling.",
                        corpus_dir="/corpus", context=context)
    panel = sources_html([turn_from_answer(1, Answer("?", "Svar. [1]", False, [citation], "extractive"), _settings())])
    assert ('<blockquote class="context">Första meningen.\n<mark>Enligt LOU får kommunen\nreservera &lt;en&gt; '
            "upphandling.</mark> Sista meningen.</blockquote>") in panel
    elsewhere = Citation(1, "a.md", "A", "", None, "Citat från annat håll.", corpus_dir="/corpus",
                         context="Annat stycke.")
    panel = sources_html([turn_from_answer(1, Answer("?", "Svar. [1]", False, [elsewhere], "extractive"),
                                           _settings())])
    assert '<blockquote class="context">Annat stycke.<br><mark>Citat från annat håll.</mark></blockquote>' in panel


def _chunk(source: str, text: str, **meta) -> Chunk:
    return Chunk(id=source, text=text, source=source, corpus_dir="/corpus", title=f"Titel {source}",
                 section="Avsnitt", page=2 if source.endswith(".pdf") else None, position=0, metadata=meta)


def _settings() -> Settings:
    return Settings(corpus_dirs=(Path("/corpus"),), stale_after_days=365)


def test_answered_turn():
    citations = [
        Citation(1, "natverket.pdf", "Nätverket", "Kommuner", 2, "Örebro var med.", corpus_dir="/corpus",
                 context="Inledning. Örebro var med. Slut.", valid_as_of="2026-11-01", last_checked="2026-11-28",
                 valid_until="2026-01-01"),
        Citation(2, "iop.md", "IOP <b>", "", None, "IOP är en samverkansform.", corpus_dir="/corpus",
                 valid_as_of="2019-06-01", last_checked="2020-03-01"),
    ]
    answer = Answer("Vilka var med?", "Örebro var med. [1] IOP är en samverkansform. [2] Se [3].", False, citations,
                    "extractive")
    turn = turn_from_answer(3, answer, _settings(), today=TODAY)

    first, second = turn.citations
    assert first.url == "/doc/0/natverket.pdf#page=2"
    # the citation carries its document's dates: no join with the manifest
    assert first.notices == ("Uppgifterna gällde till 2026-01-01; giltighetstiden har passerat.",)
    assert "2020-03-01" in second.notices[0]
    assert second.context == "IOP är en samverkansform."  # no chunk text: the quote stands alone

    words = message_words(turn)
    assert words[3].startswith('<a class="cite-ref" href="#kalla-3-1"') and words[3].endswith("1]</a>")
    assert 'title="Källa 2: IOP &lt;b&gt;"' in words[8]
    assert words[-1] == "[3]."  # no citation 3: not linked
    message = full_message(turn)
    assert 'class="stale-note"' in message and '<a href="#kalla-3-2">[2] IOP &lt;b&gt;</a>' in message

    panel = sources_html([turn])
    assert 'id="kalla-3-1"' in panel and "<mark>Örebro var med.</mark>" in panel
    assert "Öppna dokumentet på sidan 2" in panel and 'href="/doc/0/natverket.pdf#page=2"' in panel
    assert panel.count('class="stale"') == 2
    assert turn.feedback_sources()[0] == {"n": 1, "source": "natverket.pdf", "title": "Nätverket",
                                         "section": "Kommuner", "page": 2, "quote": "Örebro var med."}


def test_refusal_turn_offers_nearest_passages():
    hits = [Hit(_chunk("natverket.pdf", "Rapporten beskriver nätverket."), 0.5, rank=1),
            Hit(_chunk("gammal.md", "Gammal text.", last_checked="2018-01-01"), 0.4, rank=2)]
    answer = Answer("Hur bakar man bröd?", "Underlaget svarar inte på det.", True, [], "extractive", nearest=hits)
    turn = turn_from_answer(1, answer, _settings(), today=TODAY)
    message = full_message(turn)
    assert message.startswith('<div class="refusal" role="note"><strong>Underlaget svarar inte på det.</strong>')
    assert '<a href="#kalla-1-1">Titel natverket.pdf – Avsnitt, s. 2</a>' in message
    panel = sources_html([turn])
    assert 'class="refusal"' in panel and "Rapporten beskriver nätverket." in panel
    assert "2018-01-01" in turn.nearest[1].notices[0]
    assert turn.feedback_sources()[0]["nearest"] is True
    assert "<strong>Underlaget svarar inte på det.</strong><p>De närmaste" in message  # no reason given


def test_refusal_turn_says_why_when_the_asked_number_is_missing():
    hits = [Hit(_chunk("natverket.pdf", "Rapporten beskriver nätverket."), 0.5, rank=1)]
    reason = "Frågan gäller ett belopp, men inget av de funna avsnitten anger något."
    answer = Answer("Vad kostar det?", "Underlaget svarar inte på det.", True, [], "extractive", nearest=hits,
                    reason=reason)
    turn = turn_from_answer(1, answer, _settings(), today=TODAY)
    assert f"<strong>Underlaget svarar inte på det.</strong><p>{reason}</p>" in full_message(turn)
    assert f"<strong>Underlaget svarar inte på frågan.</strong> {reason} De närmaste" in sources_html([turn])


def test_panel_keeps_earlier_answers_folded():
    a = Answer("Fråga ett", "Svar. [1]", False,
               [Citation(1, "a.md", "A", "", None, "Svar.", corpus_dir="/corpus", context="Svar.")], "extractive")
    b = Answer("Fråga två", "Svar två. [1]", False,
               [Citation(1, "b.md", "B", "", None, "Svar två.", corpus_dir="/corpus", context="Svar två.")],
               "extractive")
    turns = [turn_from_answer(1, a, _settings()), turn_from_answer(2, b, _settings())]
    panel = sources_html(turns)
    assert panel.index('id="svar-2"') < panel.index('id="svar-1"')  # newest first
    assert '<details class="turn" id="svar-2" open>' in panel and '<details class="turn" id="svar-1">' in panel
    assert 'id="kalla-1-1"' in panel  # an old answer's [1] still has its target
    assert "Här visas källorna" in sources_html([])


def test_answer_notice_is_shown_escaped_under_the_answer():
    citations = [Citation(1, "iop.md", "IOP", "", None, "IOP är en samverkansform.", corpus_dir="/corpus",
                           valid_as_of="", last_checked="")]
    notice = "Språkmodellen kunde inte nås <b>nu</b>."
    answer = Answer("Vad är IOP?", "IOP är en samverkansform. [1]", False, citations, "extractive", notice=notice)
    message = full_message(turn_from_answer(1, answer, _settings(), today=TODAY))
    assert "Språkmodellen kunde inte nås &lt;b&gt;nu&lt;/b&gt;." in message and "<b>nu</b>" not in message
    plain = Answer("Vad är IOP?", "IOP är en samverkansform. [1]", False, citations, "extractive")
    assert "Språkmodellen" not in full_message(turn_from_answer(1, plain, _settings(), today=TODAY))


HOSTILE = '<script>alert(1)</script><img src=x "onerror=alert(2)>'


def test_hostile_corpus_text_stays_inert_in_the_templates():
    """Titles, sections, file names, quotes and passages come from corpus files: the autoescaping
    templates must render them as text, in element content and in attributes alike."""
    citation = Citation(1, f'x{HOSTILE}.md', f"Titel {HOSTILE}", f"Avsnitt {HOSTILE}", None, f"Citat {HOSTILE}",
                        corpus_dir="/corpus", context=f"Före. Citat {HOSTILE} Efter.", valid_until="2020-01-01")
    answer = Answer(f"Fråga {HOSTILE}", f"Citat {HOSTILE}. [1]", False, [citation], "extractive",
                    notice=f"Notis {HOSTILE}")
    turn = turn_from_answer(1, answer, _settings(), today=TODAY)
    nearest = Hit(Chunk(id="n", text=f"Passage {HOSTILE}", source=f"n{HOSTILE}.md", corpus_dir="/corpus",
                        title=f"Närmast {HOSTILE}", section=HOSTILE, page=None, position=0), 0.3, rank=1)
    refusal = turn_from_answer(2, Answer("?", "Nej.", True, [], "extractive", nearest=[nearest],
                                         reason=f"Skäl {HOSTILE}"), _settings(), today=TODAY)
    for html in (sources_html([turn, refusal]), full_message(turn), full_message(refusal)):
        assert "<script" not in html and "<img" not in html and '"onerror' not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x &#34;onerror=alert(2)&gt;" in html
    assert 'title="Källa 1: Titel &lt;script&gt;' in full_message(turn)  # the attribute stays one attribute
    panel = sources_html([turn])
    assert "<mark>Citat &lt;script&gt;" in panel  # the quote is still marked, as text
