"""What the chat shows for an answer: linked markers, highlighted quotes, refusals and stale-source notices."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from assistant.settings import Settings
from assistant.types import Answer, Chunk, Citation, Hit
from ui.sources import (
    feedback_sources,
    full_message,
    highlight,
    message_words,
    sources_html,
    stale_notices,
    turn_from_answer,
)

TODAY = date(2026, 11, 28)


def test_stale_notices():
    fresh = {"valid_as_of": "2026-11-01", "last_checked": "2026-11-28"}
    assert stale_notices(fresh, 365, TODAY) == []
    old_check = stale_notices({"valid_as_of": "2019-06-01", "last_checked": "2020-03-01"}, 365, TODAY)
    assert len(old_check) == 1 and "2020-03-01" in old_check[0] and "365 dagar" in old_check[0]
    # without a check date the "as of" date counts
    assert "2024-01-01" in stale_notices({"valid_as_of": "2024-01-01"}, 365, TODAY)[0]
    # a passed validity period is reported even when recently checked
    expired = stale_notices({"valid_until": "2026-06-30", "last_checked": "2026-11-01"}, 365, TODAY)
    assert expired == ["Uppgifterna gällde till 2026-06-30; giltighetstiden har passerat."]
    assert stale_notices({"valid_until": "2027-01-01", "last_checked": "2026-11-01"}, 365, TODAY) == []
    assert stale_notices({"last_checked": "2026-11-01"}, 10, TODAY)  # the limit comes from settings
    assert stale_notices({"last_checked": "inte ett datum", "valid_until": ""}, 365, TODAY) == []
    assert stale_notices({"last_checked": "2020-03-01T12:00:00"}, 365, TODAY)  # datetimes are fine


def test_highlight_marks_the_quote_within_its_passage():
    context = "Första meningen.\nEnligt 4 kap. 18 § LOU får kommunen\nreservera <en> upphandling. Sista meningen."
    out = highlight(context, "Enligt 4 kap. 18 § LOU får kommunen reservera <en> upphandling.")
    assert out.startswith("Första meningen.\n<mark>Enligt 4 kap. 18 § LOU")
    assert "&lt;en&gt;" in out and "<en>" not in out  # passage text is escaped
    assert out.endswith("</mark> Sista meningen.")
    elsewhere = highlight("Annat stycke.", "Citat från annat håll.")
    assert elsewhere == "Annat stycke.<br><mark>Citat från annat håll.</mark>"
    assert highlight("a < b", "") == "a &lt; b"


def _chunk(source: str, text: str, **meta) -> Chunk:
    return Chunk(id=source, text=text, source=source, corpus_dir="/corpus", title=f"Titel {source}",
                 section="Avsnitt", page=2 if source.endswith(".pdf") else None, position=0, metadata=meta)


def _settings() -> Settings:
    return Settings(corpus_dirs=(Path("/corpus"),), stale_after_days=365)


def test_answered_turn():
    citations = [
        Citation(1, "natverket.pdf", "Nätverket", "Kommuner", 2, "Örebro var med.", "/corpus",
                 "Inledning. Örebro var med. Slut.", "2026-11-01", "2026-11-28"),
        Citation(2, "iop.md", "IOP <b>", "", None, "IOP är en samverkansform.", "/corpus", "", "2019-06-01",
                 "2020-03-01"),
    ]
    answer = Answer("Vilka var med?", "Örebro var med. [1] IOP är en samverkansform. [2] Se [3].", False, citations,
                    "extractive")
    documents = {"k": {"corpus_dir": "/corpus", "source": "natverket.pdf", "metadata": {"valid_until": "2026-01-01"}}}
    turn = turn_from_answer(3, answer, _settings(), documents, today=TODAY)

    first, second = turn["citations"]
    assert first["url"] == "/doc/0/natverket.pdf#page=2"
    assert first["notices"] == ["Uppgifterna gällde till 2026-01-01; giltighetstiden har passerat."]  # from manifest
    assert "2020-03-01" in second["notices"][0]
    assert second["context"] == "IOP är en samverkansform."  # no chunk text: the quote stands alone

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
    assert feedback_sources(turn)[0] == {"n": 1, "source": "natverket.pdf", "title": "Nätverket",
                                         "section": "Kommuner", "page": 2, "quote": "Örebro var med."}


def test_refusal_turn_offers_nearest_passages():
    hits = [Hit(_chunk("natverket.pdf", "Rapporten beskriver nätverket."), 0.5, rank=1),
            Hit(_chunk("gammal.md", "Gammal text.", last_checked="2018-01-01"), 0.4, rank=2)]
    answer = Answer("Hur bakar man bröd?", "Underlaget svarar inte på det.", True, [], "extractive", nearest=hits)
    turn = turn_from_answer(1, answer, _settings(), {}, today=TODAY)
    message = full_message(turn)
    assert message.startswith('<div class="refusal" role="note"><strong>Underlaget svarar inte på det.</strong>')
    assert '<a href="#kalla-1-1">Titel natverket.pdf – Avsnitt, s. 2</a>' in message
    panel = sources_html([turn])
    assert 'class="refusal"' in panel and "Rapporten beskriver nätverket." in panel
    assert "2018-01-01" in turn["nearest"][1]["notices"][0]
    assert feedback_sources(turn)[0]["nearest"] is True
    assert "<strong>Underlaget svarar inte på det.</strong><p>De närmaste" in message  # no reason given


def test_refusal_turn_says_why_when_the_asked_number_is_missing():
    hits = [Hit(_chunk("natverket.pdf", "Rapporten beskriver nätverket."), 0.5, rank=1)]
    reason = "Frågan gäller ett belopp, men inget av de funna avsnitten anger något."
    answer = Answer("Vad kostar det?", "Underlaget svarar inte på det.", True, [], "extractive", nearest=hits,
                    reason=reason)
    turn = turn_from_answer(1, answer, _settings(), {}, today=TODAY)
    assert f"<strong>Underlaget svarar inte på det.</strong><p>{reason}</p>" in full_message(turn)
    assert f"<strong>Underlaget svarar inte på frågan.</strong> {reason} De närmaste" in sources_html([turn])


def test_panel_keeps_earlier_answers_folded():
    a = Answer("Fråga ett", "Svar. [1]", False, [Citation(1, "a.md", "A", "", None, "Svar.", "/corpus", "Svar.")],
               "extractive")
    b = Answer("Fråga två", "Svar två. [1]", False,
               [Citation(1, "b.md", "B", "", None, "Svar två.", "/corpus", "Svar två.")], "extractive")
    turns = [turn_from_answer(1, a, _settings(), {}), turn_from_answer(2, b, _settings(), {})]
    panel = sources_html(turns)
    assert panel.index('id="svar-2"') < panel.index('id="svar-1"')  # newest first
    assert '<details class="turn" id="svar-2" open>' in panel and '<details class="turn" id="svar-1">' in panel
    assert 'id="kalla-1-1"' in panel  # an old answer's [1] still has its target
    assert "Här visas källorna" in sources_html([])


def test_answer_notice_is_shown_escaped_under_the_answer():
    citations = [Citation(1, "iop.md", "IOP", "", None, "IOP är en samverkansform.", "/corpus", "", "", "")]
    notice = "Språkmodellen kunde inte nås <b>nu</b>."
    answer = Answer("Vad är IOP?", "IOP är en samverkansform. [1]", False, citations, "extractive", notice=notice)
    message = full_message(turn_from_answer(1, answer, _settings(), {}, today=TODAY))
    assert "Språkmodellen kunde inte nås &lt;b&gt;nu&lt;/b&gt;." in message and "<b>nu</b>" not in message
    plain = Answer("Vad är IOP?", "IOP är en samverkansform. [1]", False, citations, "extractive")
    assert "Språkmodellen" not in full_message(turn_from_answer(1, plain, _settings(), {}, today=TODAY))
