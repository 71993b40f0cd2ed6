"""Sentence splitting (text/sentences.py): a line is cut at sentence ends only."""

import pytest

from xformer_cli.text.sentences import split_sentences


@pytest.mark.parametrize(
    "text, sentences",
    [
        (
            "Ich gehe heute ins Kino. Danach treffe ich meine Freunde. Wir essen zusammen Pizza.",
            ["Ich gehe heute ins Kino.", "Danach treffe ich meine Freunde.", "Wir essen zusammen Pizza."],
        ),
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
