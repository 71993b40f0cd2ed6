import pytest

from xformer_cli.segment import FIRST_PLACEHOLDER, Masked, protect, restore, split_sentences
from xformer_cli.translator import Translator


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("Ich gehe heute ins Kino. Danach treffe ich meine Freunde. Wir essen zusammen Pizza.",
         ["Ich gehe heute ins Kino.", "Danach treffe ich meine Freunde.", "Wir essen zusammen Pizza."]),
        ("„Das ist gut“, sagte er. Er kostet 3,50 €.", ["„Das ist gut“, sagte er.", "Er kostet 3,50 €."]),
        ("Kommst du? Ja! „Komm sofort.“ Er ging.", ["Kommst du?", "Ja!", "„Komm sofort.“", "Er ging."]),
        ("Dr. Müller kommt z. B. am Mo. um 10 Uhr.", ["Dr. Müller kommt z. B. am Mo. um 10 Uhr."]),  # abbreviations
        ("Das kostet ca. fünf Euro, d.h. wenig.", ["Das kostet ca. fünf Euro, d.h. wenig."]),
        ("J. K. Rowling schrieb es.", ["J. K. Rowling schrieb es."]),  # initials
        ("Am 3. Oktober feiern wir im 19. Jahrhundert.", ["Am 3. Oktober feiern wir im 19. Jahrhundert."]),  # ordinals
        ("Er lief auf Platz 3. Der Zweite war langsamer.", ["Er lief auf Platz 3.", "Der Zweite war langsamer."]),
        ("Die Reise beginnt 2022. Acht Jahre später ist sie da.", ["Die Reise beginnt 2022.", "Acht Jahre später ist sie da."]),  # a year
        ("Es waren 1.307. Zwar weniger, aber gut.", ["Es waren 1.307.", "Zwar weniger, aber gut."]),
        ("Siehe www.example.de. Danke!", ["Siehe www.example.de.", "Danke!"]),
        ("Warte... Das ist es.", ["Warte...", "Das ist es."]),
        ("Version 2.5 ist da. ok", ["Version 2.5 ist da. ok"]),  # a lower-case word starts no German sentence
        ("  Guten Tag  ", ["Guten Tag"]),
        ("", []),
    ],
)
def test_sentences_are_split_at_their_ends_only(text, sentences):
    assert split_sentences(text) == sentences


def test_spans_become_placeholders_and_come_back():
    masked = protect("Er kostet 3,50 € und ist unter https://example.com/a?b=1 oder bei tom@example.com zu finden 😀.")
    assert masked.text == f"Er kostet {FIRST_PLACEHOLDER} und ist unter {FIRST_PLACEHOLDER + 1} oder bei {FIRST_PLACEHOLDER + 2} zu finden."
    assert masked.spans == ("3,50 €", "https://example.com/a?b=1", "tom@example.com") and masked.suffix == "😀"
    translation = f"It costs {FIRST_PLACEHOLDER} and can be found at {FIRST_PLACEHOLDER + 1} or {FIRST_PLACEHOLDER + 2}."
    assert restore(translation, masked) == "It costs 3,50 € and can be found at https://example.com/a?b=1 or tom@example.com 😀."


def test_a_span_the_model_dropped_or_garbled_is_never_lost():
    masked = Masked("Ich rufe 42 an und zahle 43 und 44.", ("0171 234567", "20 %", "7"))
    # 43 is garbled into 433 (it takes 43's place); 44 is gone (it joins the end); 42 is doubled (one kept).
    assert restore("I call 42 and pay 433 and 42.", masked) == "I call 0171 234567 and pay 20 % and 7."


def test_a_number_in_a_span_is_not_taken_for_a_placeholder():
    masked = protect("Zimmer 43 kostet 42 Euro.")
    assert masked.spans == ("43", "42")
    assert restore(masked.text.replace("Zimmer", "Room").replace("kostet", "costs"), masked) == "Room 43 costs 42 Euro."


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    return Translator.load(str(trained_bundle_dir), device="cpu")


def test_a_line_of_sentences_is_the_join_of_its_sentences(translator, monkeypatch):
    """Exact: each sentence is searched alone either way (greedy margins 0.096, 0.103 and 0.132
    on the stored bundle, far above float rounding)."""
    sentences = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?"]
    alone = translator.translate(sentences, beam_size=1)
    assert translator.translate([" ".join(sentences), ""], beam_size=1) == [" ".join(alone), ""]
    searched = []
    search_ids = translator.search_ids
    monkeypatch.setattr(translator, "search_ids", lambda segments, config: searched.append(len(segments)) or search_ids(segments, config))
    translator.translate([" ".join(sentences)], beam_size=1, split_sentences=False)
    translator.translate([" ".join(sentences)], beam_size=1)
    assert searched == [1, 3]  # the switch is real: one segment unsplit, three split


def test_every_span_survives_translation(translator):
    lines = ["Er kostet 3,50 € und ist unter https://example.com zu finden 😀.", "Schreib an tom@example.com oder ruf 0171 234567 an.",
             "Das sind 20 % mehr als 2019.", "😀", "https://example.com", "Tom hat 3 Äpfel und 12 Birnen."]
    for line, out in zip(lines, translator.translate(lines, beam_size=2)):
        for span in protect(line).spans + tuple(filter(None, (protect(line).suffix,))):
            assert span in out, (line, out)
    assert translator.translate(["😀"]) == ["😀"]  # nothing to translate: the model is not asked
