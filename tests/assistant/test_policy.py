"""assistant.policy: which sentences can answer, how passages are reordered, answer or refuse.

Pure functions over real Hit/Chunk/Candidate data; the scores stand in for the relevance model's
probabilities (its own tests are in test_crossencoder.py and test_relevance.py)."""

from __future__ import annotations

import pytest

from assistant import policy
from assistant.policy import (
    Candidate,
    asked_number,
    asked_years,
    can_answer,
    candidates,
    decide,
    rerank,
    states_number,
    states_year,
)
from assistant.types import Chunk, Hit


def hit(text: str, score: float = 1.0, rank: int = 1, cid: str | None = None, source: str = "a.md") -> Hit:
    chunk = Chunk(cid or f"c{rank}", text, source, "/corpus", "Titel", "Avsnitt", None, rank)
    return Hit(chunk, score, rank=rank)


@pytest.mark.parametrize("sentence", [
    "Idéburet offentligt partnerskap – processen steg för steg",  # a title line
    "Så länge gäller tillståndet",  # a heading above its text
    "Kraven är följande:",  # a list stub
    "| 2022 | 700 000 kr | LOU |",  # a table row
    "Den här vägledningen riktar sig till kommunens handläggare och chefer.",  # about the document
    "Det här fallet beskriver hur upphandlingen förbereddes, vem som vann och vad resultatet blev.",
    "Se bilaga.",  # too short to answer anything
    "Uppgifterna kontrollerades senast 2026-11-28.",  # when the text was checked
    "Juridiska uppgifter avser läget per 2026-11-01 och kontrollerades senast 2026-11-28.",
    "Senast uppdaterad 2024-03-12 av kommunledningsförvaltningen.",
    "Informationen på sidan uppdaterades senast i januari 2025.",
])
def test_sentences_that_never_answer(sentence):
    assert not can_answer(sentence)


@pytest.mark.parametrize("sentence", [
    "Direktupphandlingsgränsen är 700 000 kronor från och med 2022-02-01.",
    "- Minst 30 procent av de anställda ska ha funktionsnedsättning.",
    "Kommunen får reservera ett kontrakt enligt 4 kap. 18 § LOU.",
    "Direktupphandlingsgränsen ändrades senast 2022-02-01, då den höjdes till 700 000 kronor.",
    "Uppgifter om leverantörer ska kontrolleras innan avtal tecknas.",
])
def test_sentences_that_can_answer(sentence):
    assert can_answer(sentence)


def test_candidates_come_from_the_top_passages_in_order_and_are_capped():
    hits = [hit(f"Första meningen i passage {i} är här. Andra meningen i passage {i} är där.", rank=i)
            for i in range(1, 5)]
    found = candidates(hits, passages=2, max_pairs=10)
    assert [(c.hit.rank, c.index) for c in found] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [c.text for c in found[:2]] == ["Första meningen i passage 1 är här.", "Andra meningen i passage 1 är där."]
    assert len(candidates(hits, passages=4, max_pairs=3)) == 3


def test_the_passages_read_include_each_retrievers_best(monkeypatch):
    monkeypatch.setattr(policy, "PASSAGES", 3)
    monkeypatch.setattr(policy, "READ_EXTRA", 2)
    monkeypatch.setattr(policy, "DENSE_READS", 2)
    monkeypatch.setattr(policy, "LEXICAL_READS", 0)
    hits = [hit(f"Passage {i} säger något om frågan här.", score=10.0 - i, rank=i) for i in range(1, 8)]
    for h, cosine in zip(hits, [0.85, 0.70, 0.60, 0.65, 0.90, 0.80, 0.95], strict=True):
        h.dense = cosine
    hits[1].dense = None  # found by BM25 only
    # c5 (best cosine in the fused top 5) takes the place of the weakest fused passage, c3; c7 is outside
    # the pool and c6 only third by cosine, so neither is read
    assert [h.chunk.id for h in policy.read_passages(hits)] == ["c1", "c2", "c5"]
    assert [c.hit.chunk.id for c in candidates(hits)] == ["c1", "c2", "c5"]
    order = rerank(hits, [scored(hits[0], 0, 0.5), scored(hits[1], 0, 0.5), scored(hits[4], 0, 0.5)])
    assert [h.chunk.id for h in order][:3] == ["c1", "c2", "c5"]  # c3, not read, falls behind c5
    # BM25's best in the pool (c4) is read too, in place of the weakest fused passage neither retriever
    # put first (c2); c1 and c5 stay, being dense's best two
    for h, bm25 in zip(hits, [1.0, 2.0, None, 9.0, None, None, 12.0], strict=True):
        h.lexical = bm25
    monkeypatch.setattr(policy, "LEXICAL_READS", 1)
    assert [h.chunk.id for h in policy.read_passages(hits)] == ["c1", "c4", "c5"]
    monkeypatch.setattr(policy, "DENSE_READS", 0)
    monkeypatch.setattr(policy, "LEXICAL_READS", 0)
    assert [h.chunk.id for h in policy.read_passages(hits)] == ["c1", "c2", "c3"]


def test_candidates_skip_headings_inside_a_passage():
    text = "Efter beslut\nBeslutet skickas till ambassaden som du valde. Ta med ditt pass när du hämtar det."
    found = candidates([hit(text)])
    assert [c.text for c in found] == ["Beslutet skickas till ambassaden som du valde.",
                                       "Ta med ditt pass när du hämtar det."]


def scored(h: Hit, index: int, score: float, text: str | None = None) -> Candidate:
    return Candidate(h, index, text or f"Mening nummer {index} i {h.chunk.id} säger något.", score)


def test_rerank_lifts_the_passage_whose_sentence_answers():
    first, second, third = hit("a", 3.0, 1), hit("b", 2.5, 2), hit("c", 2.0, 3)
    judged = [scored(first, 0, 0.05), scored(second, 0, 0.95), scored(third, 0, 0.5)]
    order = rerank([first, second, third], judged, weight=0.5)
    assert [h.chunk.id for h in order] == ["c2", "c3", "c1"]
    assert [h.rank for h in order] == [1, 2, 3]
    # weight 0 keeps the fused order
    again = rerank([hit("a", 3.0, 1), hit("b", 2.5, 2)], [], weight=0.0)
    assert [h.chunk.id for h in again] == ["c1", "c2"]


def test_rerank_keeps_unread_passages_behind_the_read_ones(monkeypatch):
    monkeypatch.setattr(policy, "PASSAGES", 2)
    hits = [hit("a", 3.0, 1), hit("b", 2.0, 2), hit("c", 9.0, 3)]  # c was not read: it stays last
    order = rerank(hits, [scored(hits[0], 0, 0.5), scored(hits[1], 0, 0.5)], weight=1.0)
    assert [h.chunk.id for h in order] == ["c1", "c2", "c3"]


def test_refuses_when_no_sentence_is_judged_to_answer():
    h = hit("x")
    below = policy.ANSWER_THRESHOLD * 0.9
    decision = decide([h], [scored(h, 0, below), scored(h, 1, below / 2)])
    assert not decision.answer and decision.sentences == []
    assert decision.best == pytest.approx(below)
    assert not decide([h], []).answer


def test_the_answering_sentence_comes_first_then_its_context_in_document_order():
    a, b = hit("a", rank=1), hit("b", rank=2, cid="c2")
    judged = [scored(a, 0, 0.7), scored(a, 1, 0.2), scored(b, 0, 0.97), scored(b, 1, 0.2), scored(b, 2, 0.01)]
    decision = decide([a, b], judged)
    assert decision.answer
    first, *rest = decision.sentences
    assert (first.hit.chunk.id, first.index) == ("c2", 0)  # the best sentence leads, wherever it stands
    # the sentence after it (context) and another answering sentence join; the weak one does not
    assert {(c.hit.chunk.id, c.index) for c in rest} == {("c2", 1), ("c1", 0)}
    assert rest == sorted(rest, key=lambda c: (c.hit.rank, c.index))


def test_the_passage_score_weighs_in_when_sentences_are_close(monkeypatch):
    strong, weak = hit("a", score=2.0, rank=1), hit("b", score=0.5, rank=2, cid="c2")
    close = [scored(weak, 0, 0.45), scored(strong, 0, 0.40)]  # log-odds -0.20 and -0.41: 1.5 apart in passage
    assert decide([strong, weak], close).sentences[0].hit is strong
    clear = [scored(weak, 0, 0.95), scored(strong, 0, 0.30)]  # log-odds 2.94 against -0.85: the sentence wins
    assert decide([strong, weak], clear).sentences[0].hit is weak
    monkeypatch.setattr(policy, "LEAD_WEIGHT", 0.0)  # without it the model's probability alone decides
    assert decide([strong, weak], close).sentences[0].hit is weak


def test_answers_stay_short_and_never_repeat_themselves(monkeypatch):
    monkeypatch.setattr(policy, "MAX_WORDS", 20)
    h = hit("a")
    long = " ".join(["ord"] * 15) + "."
    judged = [scored(h, 0, 0.9, "Gränsen är 700 000 kronor enligt LOU."),
              scored(h, 5, 0.9, "Gränsen är 700 000 kronor enligt LOU idag."),  # the same fact again
              scored(h, 7, 0.9, long)]  # would break the word budget
    decision = decide([h], judged)
    assert [c.index for c in decision.sentences] == [0]


def test_a_number_question_needs_a_sentence_with_that_kind_of_number():
    h = hit("a")
    judged = [scored(h, 0, 0.9, "Registreringen görs hos Bolagsverket av företagets styrelse."),
              scored(h, 1, 0.7, "Registreringen kostar 1 200 kronor för ett aktiebolag.")]
    decision = decide([h], judged, "Vad kostar registreringen?")
    assert decision.answer and decision.sentences[0].index == 1  # the sentence with the amount leads
    without = decide([h], judged[:1], "Vad kostar registreringen?")
    assert not without.answer and without.reason == policy.MISSING_NUMBER["money"]
    assert decide([h], judged[:1], "Vem registrerar företaget?").answer


def test_asked_number_kinds():
    assert asked_number("Vad kostar det att registrera sig?") == "money"
    assert asked_number("Upp till vilket belopp får kommunen köpa direkt?") == "money"
    assert asked_number("Hur lång uppsägningstid har ett IOP?") == "duration"
    assert asked_number("Hur länge har LVU funnits?") == "since"
    assert asked_number("Hur många anställda har företaget?") == "count"
    assert asked_number("How many municipalities took part?") == "count"
    assert asked_number("Får kommunen reservera en upphandling?") is None
    assert asked_number("Hur långt borta är avvecklingen?") is None  # distance, not a duration


def test_dates_laws_and_source_notes_are_not_the_number_asked_for():
    assert not states_number("count", "Lagen (2022:900) trädde i kraft 2023-01-01 (källa: S54).")
    assert not states_number("count", "Det följer av 4 kap. 18 § LOU och artikel 20 i direktivet.")
    assert not states_number("money", "Konferensen hade fler än 500 deltagare.")
    assert not states_number("duration", "Enligt Forum fanns det omkring 60 IOP år 2018.")
    assert states_number("money", "Gränsen är 700 000 kronor från och med 2022-02-01.")
    assert states_number("money", "Registreringen är kostnadsfri.")
    assert states_number("duration", "Avtalet löper i tre år.")
    assert states_number("since", "Lagen kom år 1990.")
    assert states_number("count", "Minst 30 procent av de anställda ska tillhöra målgruppen.")


def test_a_question_naming_a_year_needs_a_sentence_about_that_year():
    h = hit("a")
    judged = [scored(h, 0, 0.9, "Scotland Act 2012 utökar de överlämnade befogenheterna."),
              scored(h, 1, 0.4, "Scotland Act 1998 inrättade parlamentet i Edinburgh.")]
    assert decide([h], judged, "Vad inrättade Scotland Act 1998?").sentences[0].index == 1
    refused = decide([h], judged, "Vad utökade Scotland Act 2002?")  # a near year swapped in: no answer
    assert not refused.answer and refused.reason == policy.MISSING_YEAR.format("2002")
    assert decide([h], judged, "Vad utökade Scotland Act?").answer
    # a number question whose number is there but not for the year asked is refused for the year
    money = [scored(h, 0, 0.9, "Gränsen var 615 312 kronor under 2020–2021.")]
    assert decide([h], money, "Vad var gränsen 2020?").answer
    assert decide([h], money, "Vad var gränsen 2023?").reason == policy.MISSING_YEAR.format("2023")
    assert decide([h], [scored(h, 0, 0.9, "Gränsen gäller under 2023.")],
                  "Vad kostar det 2023?").reason == policy.MISSING_NUMBER["money"]


def test_asked_years_skip_bounds_and_asides():
    assert [(y.first, y.last) for y in asked_years("Hur mycket snöade det 1885?")] == [(1885, 1885)]
    assert [(y.first, y.last) for y in asked_years("Vad hände på 1800-talet och på 1980-talet?")] == [
        (1800, 1899), (1980, 1989)]
    assert [y.text for y in asked_years("Vad gällde 2024–2025?")] == ["2024", "2025"]
    assert [(y.first, y.last) for y in asked_years("Vem vann 2022:s tävling?")] == [(2022, 2022)]  # genitive
    assert [(y.first, y.last) for y in asked_years("What happened in the 1990s?")] == [(1990, 1999)]
    for question in ("Vad gällde innan 2022?", "Vilken grupp har ökat sedan 1970?", "Vad gäller från 2026?",
                     "Vad säger lagen (2008:962)?", "Vilket ansvar har vården? (6 oktober 2021)",
                     "Vad kostar 1500 liter?", "Vad hände för 2000 år sedan?"):
        assert asked_years(question) == [], question


@pytest.mark.parametrize("question, sentence, states", [
    ("… 2024?", "För perioden 2024-01-01–2025-12-31 var gränsen 8 109 450 kronor.", True),
    ("… 2025?", "Gränsen var 615 312 kronor under 2020–2021.", False),
    ("… 2021?", "Gränsen var 615 312 kronor under 2020–21.", True),
    ("… 2024?", "Från och med 2022-02-01 är gränsen 700 000 kronor.", True),  # a start before it
    ("… 2020?", "Från och med 2022-02-01 är gränsen 700 000 kronor.", False),
    ("… på 1500-talet?", "Felen rättades först på 1600-talet av Galileo.", False),
    ("… på 1600-talet?", "Felen rättades först 1638 av Galileo.", True),
    ("… 2018?", "Strategin fick pengar (källa: regeringen, 2018-05-02).", False),  # a note's date is not it
    ("… 2022:s budget?", "I 2022:s budget fick nätverket 5 miljoner kronor.", True),
])
def test_states_year(question, sentence, states):
    (year,) = asked_years(question)
    assert states_year(year, sentence) is states


def test_a_list_of_short_items_answers_as_one_verbatim_block():
    text = ("Nätverket hade tolv kommuner. De deltagande kommunerna var:\n- Helsingborg\n- Hudiksvall\n"
            "- Härjedalen\n\nEfter projektet fortsatte arbetet i varje kommun.")
    h = hit(text)
    found = candidates([h])
    block = next(c for c in found if "\n" in c.text)
    assert block.text == "De deltagande kommunerna var:\n- Helsingborg\n- Hudiksvall\n- Härjedalen"
    assert block.text in text  # verbatim: the citation checks it against the file
    from assistant.answer import display_sentence

    assert display_sentence(block.text) == "De deltagande kommunerna var: Helsingborg; Hudiksvall; Härjedalen"
    # items that answer on their own stay single candidates, and no block is made of them
    long_items = hit("Krav:\n- Minst 30 procent av de anställda ska vara missgynnade.\n"
                     "- Företaget ska återinvestera sin vinst i verksamheten.")
    assert all("\n" not in c.text for c in candidates([long_items]))


# --- de-duplication: the same fact from two documents is quoted once ----------------------------------


@pytest.mark.parametrize(("candidate", "chosen", "repeats"), [
    ("Gränsen är 700 000 kronor enligt LOU.", "Gränsen är 700 000 kronor enligt LOU idag.", True),
    ("Direktupphandling: gränsen är 700 000 kronor.", "Gränsen för direktupphandling är 700 000 kronor.", True),
    # nearly the same words, another figure: a different fact, both may be quoted
    ("Gränsen är 615 312 kronor enligt LOU.", "Gränsen är 700 000 kronor enligt LOU.", False),
    ("Kommunen ska dokumentera skälen till köpet.", "Gränsen är 700 000 kronor enligt LOU.", False),
    ("Avtalet löper i tre år.", "", False),
    ("", "Avtalet löper i tre år.", False),
    # a figure of its own is news: the year is kept after the sentence without it, not the other way round
    ("Gränsen är 700 000 kronor enligt LOU sedan 2022.", "Gränsen är 700 000 kronor enligt LOU.", False),
    ("Gränsen är 700 000 kronor enligt LOU.", "Gränsen är 700 000 kronor enligt LOU sedan 2022.", True),
    # the same fact noted from two sources: the notes are not what the sentence says (nor are their dates)
    ("Gränsen är 700 000 kronor enligt LOU (källa: Upphandlingsmyndigheten, direktupphandling (2022-02-01)).",
     "Gränsen är 700 000 kronor enligt LOU (källa: SKR, handboken om sociala företag (2020)).", True),
    # the same list told again in fewer words
    ("De tolv kommunerna i nätverket var Laxå, Malmö och Umeå.",
     "De tolv kommunerna i SKR:s utvecklingsnätverk 2021–2022 var Laxå, Malmö och Umeå.", True),
])
def test_a_repeat_brings_no_figure_and_few_words_of_its_own(candidate, chosen, repeats):
    assert policy._repeats(candidate, chosen) is repeats


def test_a_repeated_fact_is_quoted_once_in_its_fullest_words():
    h, other = hit("a"), hit("b", rank=2, cid="c2")
    judged = [scored(h, 0, 0.9, "Gränsen är 700 000 kronor enligt LOU."),
              scored(other, 0, 0.8, "Gränsen är 700 000 kronor enligt LOU sedan 2022."),  # the same, and a year
              scored(other, 3, 0.8, "Gränsen är 700 000 kronor enligt LOU idag."),  # the first fact again
              scored(other, 5, 0.7, "Gränsen var 615 312 kronor enligt LOU under 2021.")]  # another fact
    decision = decide([h, other], judged)
    assert [(c.hit.chunk.id, c.index) for c in decision.sentences] == [("c2", 0), ("c2", 5)]


def test_a_fuller_sentence_takes_the_lead_only_if_it_passes_the_question_rules(monkeypatch):
    h, other = hit("a"), hit("b", rank=2, cid="c2")
    judged = [scored(h, 0, 0.9, "Registreringen kostar 500 kronor hos Kammarkollegiet i Stockholm."),
              scored(other, 0, 0.8, "Registreringen kostar 500 kronor hos Kammarkollegiet i Stockholm sedan 2019.")]
    question = "Vad kostar registreringen?"
    assert [c.hit.chunk.id for c in decide([h, other], judged, question).sentences] == ["c2"]
    # A restatement holds the lead's figures, so it passes whatever rule the lead passed; should a rule ever
    # read it otherwise, the lead stays.
    monkeypatch.setattr(policy, "states_number", lambda kind, text: "sedan" not in text)
    assert [c.hit.chunk.id for c in decide([h, other], judged, question).sentences] == ["c1"]


@pytest.mark.parametrize(("candidate", "chosen", "restates"), [
    # the same list told more fully: one quote is enough
    ("De tolv kommunerna i SKR:s utvecklingsnätverk 2021–2022 var Laxå, Malmö och Umeå.",
     "De tolv kommunerna i nätverket var Laxå, Malmö och Umeå.", True),
    ("Gränsen är 700 000 kronor enligt LOU sedan 2022.", "Gränsen är 700 000 kronor enligt LOU.", True),
    # the shorter one does not tell it more fully
    ("Gränsen är 700 000 kronor enligt LOU.", "Gränsen är 700 000 kronor enligt LOU sedan 2022.", False),
    # a figure of the chosen sentence missing: another fact
    ("Gränsen är 615 312 kronor enligt LOU sedan 2022.", "Gränsen är 700 000 kronor enligt LOU.", False),
    # much of its own to tell: quoted beside the chosen one
    ("Gränsen är 700 000 kronor enligt LOU, men för bilaga 2-tjänster gäller tröskelvärdet som gräns i stället.",
     "Gränsen är 700 000 kronor enligt LOU.", False),
    ("", "Gränsen är 700 000 kronor.", False),
])
def test_restates(candidate, chosen, restates):
    assert policy._restates(candidate, chosen) is restates
