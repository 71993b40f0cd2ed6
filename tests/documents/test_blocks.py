from dataclasses import replace

import pytest
import torch

import xformer_cli.documents.blocks as blocks_module
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.alignment import project_words, word_alignment, word_map
from xformer_cli.documents.blocks import hold_atoms, nest, tidy, translate_blocks
from xformer_cli.documents.inline import Marked, MarkedBuilder, Tag, atom_char
from xformer_cli.text.pieces import piece_words
from xformer_cli.text.spans import Masked, protect, restore


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    """The tiny stored bundle: its English is poor but the same on every run."""
    return Translator.load(str(trained_bundle_dir), device="cpu")


def well_nested(tags):
    return all(
        a.end <= b.start or b.end <= a.start or (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end)
        for a in tags
        for b in tags
    )


def test_pieces_map_to_whitespace_words():
    assert piece_words(["▁Ich", "▁hab", "e", "▁Hunger", "."]) == [0, 1, 1, 2, 2]
    assert piece_words(["Hallo", "▁Welt"]) == [0, 1]


def test_a_tag_covers_the_target_words_aligned_into_it():
    # target words 0..3; words 1 and 3 attend most to source word 2, words 0 and 2 to source word 0;
    # source word 0 is attended most from target word 0, word 1 from target word 2
    attention = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1], [0.0, 0.1, 0.9]])
    words = word_alignment(attention, [0, 1, 2], [0, 1, 2, 3])
    assert project_words({2}, words) == (1, 4)  # from the first to the last aligned word
    assert project_words({1}, words) == (2, 3)  # none aligned: the word attending to it most
    assert project_words(set(), words) is None


def test_a_word_that_translates_a_word_outside_the_tag_stays_outside():
    # "heute <b>blau</b>" -> "blue today": "today" attends most to "blau", yet it is the word
    # "heute" is attended from most, and "blau" has "blue": the tag holds "blue" alone
    attention = torch.tensor([[0.1, 0.9], [0.45, 0.55]])
    words = word_alignment(attention, [0, 1], [0, 1])
    assert project_words({1}, words) == (0, 1)
    assert project_words({1}, words, weak={0}) == (0, 2)  # an article's best match claims nothing
    assert project_words({0, 1}, words) == (0, 2)  # both tagged: both words


def test_pieces_are_summed_into_words():
    attention = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])  # 2 target pieces of one word, 3 source pieces
    words = word_alignment(attention, [0, 0, 1], [0, 0])
    assert torch.allclose(words, torch.tensor([[1.3, 0.7]]))


def test_nesting_keeps_children_in_parents_and_siblings_apart():
    source = (Tag(0, 10, "p"), Tag(0, 4, "a"), Tag(5, 10, "b"))
    placed = [(2, 8), (0, 6), (4, 12)]  # the child a sticks out of p, b overlaps a and sticks out
    result = nest(source, placed, "x" * 12)
    by_kind = {t.kind: (t.start, t.end) for t in result}
    assert by_kind == {"p": (2, 8), "a": (2, 6), "b": (6, 8)}
    assert well_nested(result)


def test_atoms_are_held_back_as_placeholders_and_put_back_as_they_were():
    masked = hold_atoms(protect(f"Klicken Sie auf {atom_char(0)} für 3,50 €."))
    assert masked.text == "Klicken Sie auf 43 für 42." and masked.spans == ("3,50 €", atom_char(0))
    assert restore("Click on 43 for 42.", masked) == f"Click on {atom_char(0)} for 3.50 €."
    assert restore("Click.", Masked("x 42", (atom_char(0),))) == f"Click {atom_char(0)}."  # dropped: at the end, before the full stop


def test_tidy_drops_a_full_stop_the_model_added_to_a_fragment_and_spaces_around_atoms():
    assert tidy("Das neue Rathaus", "The new town hall.") == "The new town hall"
    assert tidy("Das ist gut.", "That is good.") == "That is good."
    code = atom_char(0)
    assert tidy(f"Rufen Sie {code}, dann", f"Call {code} , then") == f"Call {code}, then"
    assert tidy(f"({code})", f"( {code} )") == f"({code})"


def marked(parts):
    builder = MarkedBuilder()
    for part in parts:
        builder.close() if part == "/" else builder.open(part) if part.startswith("<") else builder.atom(part) if part.startswith(
            "@"
        ) else builder.text(part)
    return builder.build()


def test_every_tag_and_atom_comes_back_once_around_the_translation(translator):
    blocks = [
        marked(["Ich habe ", "<b>", "großen ", "<i>", "Hunger", "/", "/", "."]),
        marked(["Tom ist ", "<a>", "hier", "/", ". Wo ist ", "<em>", "der Bahnhof", "/", "?"]),
        marked(["Klicken Sie auf ", "@code", " und dann auf ", "<a>", "Speichern", "/", "."]),
        marked(["<b>", "Achtung!", "/", " Der Zug fährt ab."]),
        marked(["  Guten Tag  "]),
    ]
    config = translator.config(beam_size=2)
    result = translate_blocks(blocks, translator, config)
    assert len(result) == len(blocks)
    for source, target in zip(blocks, result):
        assert sorted(t.kind for t in target.tags) == sorted(t.kind for t in source.tags)
        assert target.atoms == source.atoms and sum(ch == atom_char(0) for ch in target.text) == len(source.atoms)
        assert well_nested(target.tags) and all(0 <= t.start <= t.end <= len(target.text) for t in target.tags)
    assert result[0].plain == translator.translate(["Ich habe großen Hunger."], beam_size=2)[0]
    assert result[4].text.startswith("  ") and result[4].text.endswith("  ")
    whole = next(t for t in result[3].tags if t.kind == "<b>")  # a tag over a whole sentence covers its whole translation
    first = translator.translate(["Achtung!"], beam_size=2)[0]
    assert result[3].text[whole.start : whole.end] == first


def test_a_block_without_words_comes_through(translator):
    result = translate_blocks([Marked(""), marked(["@img"]), Marked("42")], translator, translator.config())
    assert result[0].text == "" and result[1].text == atom_char(0) and result[2].text == "42"


def test_tags_follow_the_attention_the_search_recorded_and_a_second_pass_only_where_it_recorded_none(translator, monkeypatch):
    blocks = [
        marked(["Ich habe ", "<b>", "großen ", "<i>", "Hunger", "/", "/", "."]),
        marked(["Tom ist ", "<a>", "hier", "/", ". Wo ist ", "<em>", "der Bahnhof", "/", "?"]),
    ]
    forced_pairs = []
    teacher_forced = blocks_module.teacher_forced

    def counting(model, src_ids, tgt_ids, heads):
        forced_pairs.extend(zip(src_ids, tgt_ids))
        return teacher_forced(model, src_ids, tgt_ids, heads)

    monkeypatch.setattr(blocks_module, "teacher_forced", counting)
    config = translator.config(beam_size=2)
    searched = translate_blocks(blocks, translator, config)
    assert forced_pairs == []  # every tag followed the attention the search recorded

    search = translator.translate_masked

    def forgetting(sentences, config):  # the search's pieces dropped: every tagged sentence read teacher-forced
        return [[replace(t, pieces=None) for t in nbest] for nbest in search(sentences, config)]

    monkeypatch.setattr(translator, "translate_masked", forgetting)
    # The same attention either way (equal to 1e-5, tests/decoding/test_source_attention.py); the
    # closest decision between two words here wins by 0.030 (measured), so no CPU's rounding flips it.
    assert translate_blocks(blocks, translator, config) == searched
    assert len(forced_pairs) == 3  # three sentences with a tag over part of them

    def one_more_word(sentences, config):  # a translation whose words are not all the search's: mapped, no second pass
        return [[replace(t, text="Well, " + t.text) for t in nbest] for nbest in search(sentences, config)]

    monkeypatch.setattr(translator, "translate_masked", one_more_word)
    forced_pairs.clear()
    moved = translate_blocks(blocks, translator, config)
    assert forced_pairs == []
    inside = lambda block: sorted(block.text[t.start : t.end].removeprefix("Well, ") for t in block.tags)  # noqa: E731
    assert [inside(block) for block in moved] == [inside(block) for block in searched]  # the same words tagged
    # (the added first word goes with the word after it, and so into a tag that starts there)


def test_the_searched_words_map_onto_the_words_put_back():
    # "43" held back for "12 000", a word added by tidying, a word dropped
    assert word_map(["B", "42", "etwa", "43", "Fahrzeuge"], ["B", "33", "etwa", "12", "000", "Fahrzeuge"]) == [0, 1, 2, 3, 3, 4]
    assert word_map(["a", "b"], ["well,", "a", "b"]) == [0, 0, 1]
    assert word_map(["a", "x", "b"], ["a", "b"]) == [0, 2]
    assert word_map(["a", "b", "c"], ["a", "y"]) == [0, 1]  # two replaced by one: the first of them


def test_a_model_that_writes_tags_places_them_and_a_tag_it_loses_goes_by_the_attention(translator, monkeypatch):
    """`inline_tags = "model"`: each sentence goes to the model with its tags written in
    (`tag_text.render`); where the translation carries them, they stay where the model put them;
    a sentence whose translation lost its tag is translated again plain, and the attention places it."""
    blocks = [marked(["Ich habe ", "<b>", "großen ", "<i>", "Hunger", "/", "/", ". Tom ist ", "<a>", "hier", "/", "."])]
    search, asked = translator.translate_masked, []
    written = {"Ich habe <b> großen <i> Hunger </i> </b>.": "I am <b> very <i> hungry </i> </b>.", "Tom ist <b> hier </b>.": "Tom is here."}

    def model_with_tags(sentences, config):
        asked.append([s.text for s in sentences])
        if all(s.text in written for s in sentences):
            return [[replace(nbest[0], text=written[s.text])] for s, nbest in zip(sentences, search(sentences, config))]
        return search(sentences, config)

    monkeypatch.setattr(translator, "translate_masked", model_with_tags)
    (result,) = translate_blocks(blocks, translator, translator.config(beam_size=2, inline_tags="model"))
    assert asked == [list(written), ["Tom ist hier."]]  # the lost tag's sentence again, plain
    plain = translator.translate(["Tom ist hier."], beam_size=2)[0]
    assert result.plain == f"I am very hungry. {plain}"
    bold, italic, link = sorted(result.tags, key=lambda t: t.start)
    assert (result.text[bold.start : bold.end], result.text[italic.start : italic.end]) == ("very hungry", "hungry")
    assert link.kind == "<a>" and len("I am very hungry. ") <= link.start < link.end <= len(result.text)


def test_only_tags_over_part_of_a_sentence_are_written_and_at_most_three(translator):
    from xformer_cli.documents.blocks import sentences_of, tags_to_write

    blocks = [
        marked(["<b>", "Achtung!", "/", " Der ", "<i>", "Zug", "/", " fährt ab."]),
        marked(["<a>", "Eins", "/", " ", "<b>", "zwei", "/", " ", "<i>", "drei", "/", " ", "<u>", "vier", "/", "."]),
    ]
    sentences = [s for i, block in enumerate(blocks) for s in sentences_of(i, block, True)]
    written = tags_to_write(blocks, sentences)
    assert list(written) == [1]  # "Achtung!" is tagged whole; four tags are more than the model carries
    ((number, span),) = written[1]
    assert number == 1 and sentences[1].text[span.start : span.end] == "Zug" and span.name == "b"
