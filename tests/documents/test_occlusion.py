from dataclasses import replace

import pytest
import torch

import xformer_cli.documents.occlusion as occlusion
from xformer_cli.batching import collate
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import MarkedBuilder
from xformer_cli.documents.occlusion import Question, characters, narrowed, piece_log_probs, question, word_falls


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    """The tiny stored bundle: its English is poor but the same on every run."""
    return Translator.load(str(trained_bundle_dir), device="cpu")


def test_a_question_names_the_tagged_words_and_those_the_attention_gave_the_tag():
    source, translation = "Ich habe heute großen Hunger.", "I am very hungry today."
    tagged = (source.index("großen"), source.index("Hunger") + len("Hunger"))
    given = (translation.index("very"), translation.index("today") + len("today"))
    assert question(source, translation, tagged, given, str.upper) == Question(source.upper(), translation.upper(), (3, 4), (2, 5))
    assert question(source, translation, tagged, (5, 9), str) is None  # one word: nothing to narrow
    assert characters(translation, (2, 4)) == (translation.index("very"), translation.index("hungry") + len("hungry"))


def test_a_tag_keeps_the_words_from_the_first_to_the_last_whose_fall_counts(monkeypatch):
    asked = [Question("a b c", "v w x y z", (1,), (1, 5)), Question("a", "v w", (0,), (0, 2)), Question("a", "v w", (0,), (0, 2))]
    falls = [torch.tensor([0.05, 2.0, 0.1, 0.3]), torch.zeros(2), None]  # 0.1 is not under a tenth of 2.0
    monkeypatch.setattr(occlusion, "word_falls", lambda questions, model, tokenizer: falls)
    assert narrowed(asked, None, None) == [(2, 5), (0, 2), (0, 2)]  # no fall, or no reading: as the attention gave it


def test_the_pieces_read_at_chosen_positions_have_the_log_probs_of_a_whole_teacher_forced_pass(translator):
    model, tokenizer, c = translator.model, translator.tokenizer, translator.model.config
    texts = [("Ich habe Hunger.", "I am hungry."), ("Tom", "Tom is here now.")]
    pairs = [(tokenizer.encode([s])[0], tokenizer.encode_target([t])[0]) for s, t in texts]
    reads = [(src, tgt[: positions[-1] + 1], positions) for (src, tgt), positions in zip(pairs, [[0, 2], [1, 2, 3]])]
    with torch.inference_mode():
        batch = collate([s for s, _ in pairs], [t for _, t in pairs], c.pad_id, c.bos_id, c.eos_id)
        whole = model(batch.src, batch.tgt_in).float().log_softmax(dim=-1).gather(2, batch.tgt_out.unsqueeze(2)).squeeze(2)
    for b, ((_, _, positions), got) in enumerate(zip(reads, piece_log_probs(model, reads))):
        torch.testing.assert_close(got, whole[b, positions], atol=1e-5, rtol=1e-5)


def test_a_word_falls_by_the_log_prob_its_pieces_lose_with_the_tagged_words_hidden(translator):
    model, tokenizer, c = translator.model, translator.tokenizer, translator.model.config
    source, english = "Ich habe Hunger.", "I am hungry."
    (fall,) = word_falls([Question(source, english, (2,), (1, 3))], model, tokenizer)
    src, tgt = tokenizer.encode([source])[0], tokenizer.encode_target([english])[0]
    words = occlusion.piece_words(tokenizer.pieces(src))
    hidden = [c.unk_id if w == 2 else p for p, w in zip(src, words)]
    with torch.inference_mode():
        batch = collate([src, hidden], [tgt, tgt], c.pad_id, c.bos_id, c.eos_id)
        lp = model(batch.src, batch.tgt_in).float().log_softmax(dim=-1).gather(2, batch.tgt_out.unsqueeze(2)).squeeze(2)
    target_words = occlusion.piece_words(tokenizer.pieces(tgt))
    expected = torch.zeros(2)
    for p, w in enumerate(target_words):
        if 1 <= w < 3:
            expected[w - 1] += max(float(lp[0, p] - lp[1, p]), 0.0)
    torch.testing.assert_close(fall, expected, atol=1e-5, rtol=1e-5)


def test_checked_tags_come_back_once_each_and_the_words_are_those_of_plain_tags(translator, monkeypatch):
    builder = MarkedBuilder()
    for step in ["Ich ", "<b>", "habe Hunger", "/", " und ", "<i>", "Durst", "/", "."]:  # the tiny model spreads <i> wide
        builder.open(step) if step.startswith("<") else builder.close() if step == "/" else builder.text(step)
    block = builder.build()
    config = translator.config()
    plain = translate_blocks([block], translator, config)[0]
    asked = []
    real = occlusion.narrowed
    monkeypatch.setattr("xformer_cli.documents.blocks.narrowed", lambda q, m, t: asked.extend(q) or real(q, m, t))
    checked = translate_blocks([block], translator, replace(config, check_tags=True))[0]
    assert checked.text == plain.text and len(checked.tags) == len(plain.tags) == 2
    assert all(0 <= tag.start <= tag.end <= len(checked.text) for tag in checked.tags)
    assert asked and all(q.given[1] - q.given[0] >= 2 for q in asked)  # only tags over several words are asked
