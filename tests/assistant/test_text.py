"""assistant.text: whitespace normalisation, Swedish sentence splitting with exact spans, word tokens."""

from __future__ import annotations

import pytest

from assistant.text import normalize_ws, split_sentences, without_source_notes, words

LEGAL = (
    "Enligt 4 kap. 18 § LOU får en kommun reservera kontrakt. "
    "Det gäller t.ex. arbetsintegrerande sociala företag, bl.a. kooperativ. "
    "Se prop. 2015/16:195 s. 439 för motiven. "
    "Reglerna gäller fr.o.m. 2022-02-01 och t.o.m. 2025-12-31 enl. lagen. "
    "Kontakta A. Berg på enheten! Vad gäller då? Svaret kommer nedan."
)


def test_abbreviations_do_not_end_sentences():
    assert split_sentences(LEGAL) == [
        "Enligt 4 kap. 18 § LOU får en kommun reservera kontrakt.",
        "Det gäller t.ex. arbetsintegrerande sociala företag, bl.a. kooperativ.",
        "Se prop. 2015/16:195 s. 439 för motiven.",
        "Reglerna gäller fr.o.m. 2022-02-01 och t.o.m. 2025-12-31 enl. lagen.",
        "Kontakta A. Berg på enheten!",
        "Vad gäller då?",
        "Svaret kommer nedan.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        LEGAL,
        "Rad ett utan punkt\nfortsätter här. Och sedan\n\nett nytt stycke. Slut",
        "Lista:\n- första punkten. med gemen\n- andra punkten\n1. numrerad rad\n\nEfteråt. Klart.",
        '"Citatet slutar här." (Källa: S54.) Nästa mening.',
        "| År | Belopp |\n|---|---|\n| 2022 | 700 000 kr |",
    ],
)
def test_sentences_are_exact_substrings_in_order_and_lose_no_words(text):
    sentences = split_sentences(text)
    pos = 0
    for s in sentences:
        assert s == s.strip() and s
        found = text.find(s, pos)
        assert found >= 0, f"not an exact span: {s!r}"
        pos = found + len(s)
    assert words(" ".join(sentences)) == words(text)


def test_sentence_ends_before_capital_digit_and_quote_but_not_lowercase():
    assert split_sentences("Beloppet är högt. 2022 ändrades det.") == ["Beloppet är högt.", "2022 ändrades det."]
    assert split_sentences('Hon sa nej. "Aldrig."') == ["Hon sa nej.", '"Aldrig."']
    # a lower-case continuation after a period is not a new sentence ("ca. tio", unknown abbreviations)
    assert split_sentences("Det kostade omkr. tio kronor.") == ["Det kostade omkr. tio kronor."]


def test_list_and_table_lines_are_units_of_their_own():
    text = "Krav:\n- minst 30 procent\n- social integration\n\nSlutsats. Klart."
    assert split_sentences(text) == ["Krav:", "- minst 30 procent", "- social integration", "Slutsats.", "Klart."]


def test_prose_lines_within_a_paragraph_are_joined():
    text = "Direktupphandlingsgränsen är\n700 000 kronor. Den gäller\nfrån 2022."
    assert split_sentences(text) == ["Direktupphandlingsgränsen är\n700 000 kronor.", "Den gäller\nfrån 2022."]


def test_normalize_ws():
    assert normalize_ws("  a\n\tb   c \n") == "a b c"
    assert normalize_ws("") == ""


def test_words_lowercases_and_keeps_swedish_letters_and_paragraph_sign():
    assert words("Åtta ÄGG, 18 § och Öl!") == ["åtta", "ägg", "18", "§", "och", "öl"]


def test_a_heading_line_above_its_text_is_a_unit_of_its_own():
    text = ("Efter beslut\nBeslutet skickas till ambassaden. Ta med ditt pass.\nSå länge gäller tillståndet\n"
            "Du kan få tillstånd.")
    assert split_sentences(text) == [
        "Efter beslut", "Beslutet skickas till ambassaden.", "Ta med ditt pass.", "Så länge gäller tillståndet",
        "Du kan få tillstånd.",
    ]


def test_wrapped_prose_lines_are_not_taken_for_headings():
    # a long line, or a short one continued in lower case, is running text
    text = ("Kommunen kan reservera kontrakt för leverantörer vars huvudsakliga syfte\när social integration. "
            "Det gäller\nLOU och LUF.")
    assert split_sentences(text) == [
        "Kommunen kan reservera kontrakt för leverantörer vars huvudsakliga syfte\när social integration.",
        "Det gäller\nLOU och LUF.",
    ]


def test_without_source_notes_drops_spelled_out_sources_with_their_dates():
    text = ("Bidraget beslutas av nämnden (källa: SKR, Föreningsbidrag (2023-12-13)). Gränsen gäller från "
            "2022 (Källor: Konkurrensverket; Upphandlingsmyndigheten) och (enligt lagen) framåt.")
    assert without_source_notes(text) == ("Bidraget beslutas av nämnden. Gränsen gäller från 2022 och "
                                          "(enligt lagen) framåt.")


def test_without_source_notes_drops_a_tables_source_column_known_by_its_header():
    table = ("Gränserna:\n| Period | Gräns | Källa |\n|---|:--|---|\n| 2024–2025 | 700 000 kronor | Konkurrensverket, "
             "nya upphandlingsregler: konkurrensverket.se/upphandling |\n| 2026 | 800 \\| 900 kronor | SKR |\n\n"
             "| Källa | Not |\n|---|---|\n| SKR | ingen |")
    assert without_source_notes(table) == ("Gränserna:\n| Period | Gräns |\n|---|:--|\n| 2024–2025 | 700 000 kronor |"
                                           "\n| 2026 | 800 \\| 900 kronor |\n\n| Not |\n|---|\n| ingen |")
    # without its header a row cannot be told apart from one whose last column is content
    row = "| 2024–2025 | 700 000 kronor | SKR |"
    assert without_source_notes(row) == row
    assert without_source_notes("| Källa | Belopp |\n| SKR | 5 kronor |") == "| Källa | Belopp |\n| SKR | 5 kronor |"


def test_no_sentence_ends_inside_a_source_note_whose_title_ends_in_a_question():
    text = ('IOP lanserades 2010 av Forum (källa: Upphandlingsmyndigheten, Trendens 2018, "Samverkan med '
            'idéburen sektor – bara IOP?" (2018-10-17)). Omkring 60 IOP fanns år 2018 (se rapporten. Den '
            'finns på webben). Nästa mening.')
    sentences = split_sentences(text)
    assert sentences == [
        'IOP lanserades 2010 av Forum (källa: Upphandlingsmyndigheten, Trendens 2018, "Samverkan med '
        'idéburen sektor – bara IOP?" (2018-10-17)).',
        "Omkring 60 IOP fanns år 2018 (se rapporten. Den finns på webben).",
        "Nästa mening.",
    ]
    assert without_source_notes(sentences[0]) == "IOP lanserades 2010 av Forum."


def test_a_stray_or_very_long_bracket_does_not_hold_sentences_together():
    stray = "Beslutet (se bilaga. Nämnden fattar beslut. Det gäller 2024."
    assert split_sentences(stray) == ["Beslutet (se bilaga.", "Nämnden fattar beslut.", "Det gäller 2024."]
    long_aside = "Inledning (" + "Det här är en lång mening. " * 20 + "slut)."
    assert len(split_sentences(long_aside)) > 10
