from pathlib import Path

import pytest

from xformer_cli.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, TAG_PIECE, UNK_ID, Tokenizer


def test_special_ids_are_fixed(tokenizer):
    sp = tokenizer.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)


def test_round_trip_of_seen_and_unseen_characters(tokenizer):
    texts = ["Ich habe Hunger.", "Größe: 5 € — 東京 🙂"]
    ids = tokenizer.encode(texts)
    assert tokenizer.decode(ids) == texts


def test_byte_fallback_means_no_unknown_piece(tokenizer):
    ids = tokenizer.encode(["Ωμέγα ☃ ʃ"])[0]
    assert UNK_ID not in ids
    assert any(tokenizer.sp.IsByte(i) for i in ids)


def test_save_and_load_give_the_same_model(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "spm.model")
    again = Tokenizer.load(tmp_path / "spm.model")
    assert again.vocab_size == tokenizer.vocab_size
    assert again.encode(["Guten Tag"]) == tokenizer.encode(["Guten Tag"])


def test_a_new_tokenizer_reserves_the_tag_piece_which_no_text_produces(tokenizer):
    tag = tokenizer.tag_id
    assert tag == 4 and tokenizer.pieces([tag]) == [TAG_PIECE] and tokenizer.sp.IsControl(tag)
    texts = [TAG_PIECE, f"{TAG_PIECE} Hallo", f"Hallo{TAG_PIECE}Welt", f"▁{TAG_PIECE}", "<BT>", "< bt >", "<bt", "bt>"]
    ids = tokenizer.encode(texts)
    assert all(tag not in row for row in ids)
    assert tokenizer.decode(ids[:3]) == texts[:3]  # the string survives as ordinary pieces
    assert tokenizer.decode([[tag, *tokenizer.encode(["Hallo"])[0]]]) == ["Hallo"]  # decoding drops the tag


def test_an_older_tokenizer_has_no_tag_piece(trained_bundle_dir):
    old = Tokenizer.load(trained_bundle_dir / "spm.model")  # trained before the tag existed
    assert old.tag_id is None
    assert old.encode([TAG_PIECE]) == old.encode(["<bt>"]) and old.sp.PieceToId(TAG_PIECE) == UNK_ID


def corpus_lines(tiny_corpus) -> list[str]:
    return [line for path in tiny_corpus for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_sampled_segmentation_is_another_cut_of_the_same_text_that_its_seed_repeats(tokenizer, tiny_corpus):
    import numpy as np

    from xformer_cli.text.tokenizer import sampling_seed

    lines = corpus_lines(tiny_corpus)
    plain = tokenizer.encode(lines)
    first = tokenizer.sample_encode(lines, 0.1, seed=11)
    assert tokenizer.sample_encode(lines, 0.1, seed=12) != first  # another seed, another draw
    assert tokenizer.sample_encode(lines, 0.1, seed=11, threads=2) == first  # the seed alone decides
    assert tokenizer.decode(first) == tokenizer.decode(plain)  # the same text, cut otherwise
    changed = sum(a != b for a, b in zip(first, plain))
    assert 0.3 * len(lines) < changed < len(lines)  # BPE-dropout at 0.1 re-cuts many lines, not every one
    assert np.mean([len(x) for x in first]) > np.mean([len(x) for x in plain])  # skipped merges: more pieces
    assert tokenizer.sample_encode_target(lines, 0.1, seed=11) == first  # one joint model
    assert all(tokenizer.tag_id not in row for row in first)  # never the tag piece
    texts = ["Größe: 5 € — 東京 🙂 Straßenbahnhaltestelle"] * 50  # unseen characters: byte pieces, kept as they are
    sampled = tokenizer.sample_encode(texts, 0.3, seed=1)
    assert tokenizer.decode(sampled) == texts and len({tuple(x) for x in sampled}) > 1
    assert sampling_seed(3, 0, 1) == sampling_seed(3, 0, 1) != sampling_seed(3, 1, 0)
    assert tokenizer.sample_encode(lines, 0.0, seed=11) == plain
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="must be at least 0 and below 1"):
            tokenizer.sample_encode(lines[:3], bad, seed=1)


def test_bpe_dropout_without_a_skip_is_sentencepieces_own_segmentation(tokenizer, tiny_corpus, trained_bundle_dir):
    import random

    from xformer_cli.text.bpe_dropout import WORD_START, BpeDropout

    lines = corpus_lines(tiny_corpus)
    for tok in (tokenizer, Tokenizer.load(Path(__file__).parents[2] / "models" / "de-en-general" / "spm.model")):
        dropout = BpeDropout(tok.sp, tok.model_proto)
        assert dropout.by_word
        words = 0
        for row in tok.encode(lines):
            starts = [k for k, i in enumerate(row) if k == 0 or tok.pieces([i])[0].startswith(WORD_START)] + [len(row)]
            for a, b in zip(starts, starts[1:]):
                word = row[a:b]
                if not any(dropout.special[i] for i in word):
                    assert dropout.merge("".join(tok.pieces(word)), 10**9, 0.5, random.Random(0)) == word
                    words += 1
        assert words > 2000


def test_bpe_dropout_draws_as_sentencepieces_own_sampler_does(tokenizer, tiny_corpus):
    import numpy as np

    lines = corpus_lines(tiny_corpus) * 20
    plain = tokenizer.encode(lines)
    ours = tokenizer.sample_encode(lines, 0.1, seed=5)
    theirs = tokenizer.sp.Encode(lines, enable_sampling=True, alpha=0.1, nbest_size=-1, num_threads=1)  # not reproducible across processes
    for a, _ in ((ours, theirs), (theirs, ours)):
        assert tokenizer.decode(a[:800]) == tokenizer.decode(plain[:800])
    # 16,000 sentences: the standard errors are about 0.01 pieces and 0.004 of the share; a wrong draw moves either far more.
    assert abs(np.mean([len(x) for x in ours]) - np.mean([len(x) for x in theirs])) < 0.1
    assert abs(np.mean([a != p for a, p in zip(ours, plain)]) - np.mean([a != p for a, p in zip(theirs, plain)])) < 0.03


def test_only_a_joint_bpe_tokenizer_samples(tiny_corpus):
    from xformer_cli.text.bpe_dropout import model_layout
    from xformer_cli.text.tokenizer import SourceTargetTokenizer, train_tokenizer

    unigram = train_tokenizer(corpus_lines(tiny_corpus), 500, model_type="unigram")
    assert model_layout(unigram.model_proto)[0] == 1 and unigram.sampling_problem() == "a unigram model"
    with pytest.raises(ValueError, match="a unigram model"):
        unigram.sample_encode(["Hallo"], 0.1, seed=1)
    bpe = train_tokenizer(corpus_lines(tiny_corpus), 500)
    assert model_layout(bpe.model_proto)[0] == 2 and bpe.sampling_problem() is None
    marian = SourceTargetTokenizer(unigram.model_proto, unigram.model_proto, {"</s>": 0, "<unk>": 1, "<pad>": 2})
    assert "Marian's pair of source and target models" == marian.sampling_problem()
