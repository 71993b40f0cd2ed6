"""Inline tags written into the text for a model trained to carry them, and read back out."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from xformer_cli.documents.tag_text import Span, mark, marked, parse, render, spans_to_write, trimmed, unmarked

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tag_corpus.py"


@pytest.mark.parametrize(
    "text, spans, written",
    [
        ("Das rote Haus.", [Span(4, 8)], "Das <b> rote </b> Haus."),
        ("Ich bin (im Netz).", [Span(9, 16)], "Ich bin (<b> im Netz </b>)."),
        ("Rot ist gut", [Span(0, 3), Span(8, 11, "i")], "<b> Rot </b> ist <i> gut </i>"),
        ("Das ist sehr gut.", [Span(4, 16), Span(8, 12, "i")], "Das <b> ist <i> sehr </i> gut </b>."),  # nested
    ],
)
def test_tags_are_words_of_their_own_and_come_back_where_they_were(text, spans, written):
    assert render(text, spans) == written
    assert parse(written, len(spans)) == (text, spans)


def test_a_translation_with_its_tags_moved_gives_their_new_places():
    text, (bold, italic) = parse("The <b> red </b> house <i> now </i>.", 2)
    assert text == "The red house now." and text[bold.start : bold.end] == "red" and text[italic.start : italic.end] == "now"
    text, (bold, italic) = parse("I am <b> very <i> hungry </i> </b>.", 2)  # nested: closed one after the other
    assert text == "I am very hungry." and (text[bold.start : bold.end], text[italic.start : italic.end]) == ("very hungry", "hungry")


def test_tags_become_marks_against_their_words_for_tidying():
    assert marked("The <b> red </b> house.", 1) == f"The {mark(0, False)}red{mark(0, True)} house."
    assert marked("<b> Rot </b> ist <i> gut </i>.", 2) == f"{mark(0, False)}Rot{mark(0, True)} ist {mark(1, False)}gut{mark(1, True)}."
    assert unmarked(f"The {mark(0, False)}red{mark(0, True)} house.", 1) == ("The red house.", [(4, 7)])
    assert unmarked("The red house.", 1) is None  # a mark lost in tidying


@pytest.mark.parametrize(
    "translation",
    [
        "The <b> red house.",  # never closed
        "The </b> red <b> house.",  # closed before it opens
        "The <b> red </b> <b> house </b>.",  # twice
        "The <b> red <i> house </b> now </i>.",  # crossing
        "The red house.",  # lost
        "The <b> </b> red house.",  # around no word
    ],
)
def test_a_translation_that_lost_or_broke_a_tag_is_none(translation):
    assert parse(translation, 2 if "<i>" in translation else 1) is None


def test_only_tags_over_whole_words_are_written():
    assert spans_to_write("Das rote Haus.", [(3, 9), (0, 3)]) == [Span(4, 8, "b"), Span(0, 3, "i")]
    assert spans_to_write("Einführung", [(4, 5)]) is None  # inside a word
    assert spans_to_write("Das rote Haus.", [(3, 4)]) is None  # around a space only
    assert spans_to_write("a b c d e", [(0, 1), (2, 3), (4, 5), (6, 7)]) is None  # more than three
    assert render("Ein rotes Haus", [Span(4, 9)]) == "Ein <b> rotes </b> Haus"


def test_edges_lose_their_spaces_and_punctuation():
    assert trimmed(" (im Netz). ", 0, 12) == (2, 9)
    assert trimmed("...", 0, 3) == (3, 3)


@pytest.fixture(scope="module")
def tag_corpus():
    spec = importlib.util.spec_from_file_location("tag_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_phrase_is_what_its_words_are_tied_to_and_nothing_else(tag_corpus):
    links = {(0, 0), (1, 2), (2, 1), (3, 3)}  # Das rote Haus steht / The house red stands: crossing links
    assert tag_corpus.phrase(links, 1, 2) == (1, 2)  # "rote Haus" -> "house red"
    assert tag_corpus.phrase(links, 1, 1) == (2, 2)
    announced = {(0, 0), (1, 1), (2, 2), (3, 1)}  # Er hat es angekündigt / He announced it
    assert tag_corpus.phrase(announced, 3, 3, "Er hat es angekündigt".split()) == (1, 1)  # "hat": an auxiliary
    assert tag_corpus.phrase(announced, 3, 3, "Er sah es angekündigt".split()) is None  # "sah" is not
    assert tag_corpus.phrase(announced, 3, 3, "Er hat es angekündigt".split(), strict=True) is None  # a strict phrase pair
    assert tag_corpus.phrase({(0, 0), (1, 1), (1, 3), (2, 2)}, 1, 1) is None  # a word between tied only to a word outside
    assert tag_corpus.phrase({(0, 0)}, 1, 1) is None  # not tied to anything


def test_tagged_pairs_carry_the_same_tags_on_both_sides(tag_corpus):
    de, en = "Tom hat ein neues Fahrrad gekauft.", "Tom bought a new bicycle."
    links = {(0, 0), (1, 1), (5, 1), (2, 2), (3, 3), (4, 4)}
    for seed in range(20):
        tagged = tag_corpus.tag_pair(de, en, links, random.Random(seed), second=0.5)
        assert tagged is not None
        names = [n for n in ("b", "i") if f"<{n}>" in tagged[0]]
        german, english = parse(tagged[0], len(names)), parse(tagged[1], len(names))
        assert german[0] == de and english[0] == en
        for g, e in zip(german[1], english[1]):
            assert (de[g.start : g.end], en[e.start : e.end]) in {
                ("Tom", "Tom"),
                ("ein", "a"),
                ("neues", "new"),
                ("Fahrrad", "bicycle"),
                ("neues Fahrrad", "new bicycle"),
                ("ein neues", "a new"),
                ("ein neues Fahrrad", "a new bicycle"),
                ("gekauft", "bought"),  # "hat", an auxiliary, is tied to "bought" too
            }, (tagged, g, e)
