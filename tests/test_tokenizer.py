from xformer_cli.tokenizer import BOS_ID, EOS_ID, PAD_ID, TAG_PIECE, UNK_ID, Tokenizer


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


def test_a_sampled_segmentation_is_another_cut_of_the_same_text_that_its_seed_repeats(tokenizer, tiny_corpus):
    import numpy as np

    from xformer_cli.tokenizer import sampling_seed

    lines = tiny_corpus[0].read_text(encoding="utf-8").splitlines()
    plain = tokenizer.encode(lines)
    first = tokenizer.sample_encode(lines, 0.1, seed=11)
    assert tokenizer.sample_encode(lines, 0.1, seed=12) != first  # another seed, another draw
    tokenizer.sample_encode(lines[:7], 0.1, seed=5)  # what was sampled before does not matter
    assert tokenizer.sample_encode(lines, 0.1, seed=11) == first
    assert tokenizer.decode(first) == tokenizer.decode(plain) == lines  # the same text, cut otherwise
    changed = sum(a != b for a, b in zip(first, plain))
    assert 0.3 * len(lines) < changed < len(lines)  # BPE-dropout at 0.1 re-cuts many lines, not every one
    assert np.mean([len(x) for x in first]) > np.mean([len(x) for x in plain])  # dropped merges: more pieces
    assert tokenizer.sample_encode_target(lines, 0.1, seed=11) == first  # one joint model
    assert all(tokenizer.tag_id not in row for row in first)  # never the tag piece (a control symbol)
    # A batch of one line, as a corpus's last chunk can be, is seeded just the same.
    lone = [tokenizer.sample_encode([lines[3]], 0.1, seed=s)[0] for s in range(12)]
    assert lone[5] == tokenizer.sample_encode([lines[3]], 0.1, seed=5)[0] and len({tuple(x) for x in lone}) > 1
    assert tokenizer.sample_encode([], 0.1, seed=1) == []
    assert sampling_seed(3, 0, 1) == sampling_seed(3, 0, 1) != sampling_seed(3, 1, 0)
    assert all(0 <= sampling_seed(s, 7) < 2**32 - 1 for s in range(100))


def test_marians_source_and_target_models_sample_too(tiny_corpus):
    import io

    import sentencepiece as spm

    from xformer_cli.tokenizer import SourceTargetTokenizer

    texts = {}
    protos = []
    for path in tiny_corpus:
        texts[path.suffix] = path.read_text(encoding="utf-8").splitlines()
        model = io.BytesIO()
        spm.SentencePieceTrainer.Train(sentence_iterator=iter(texts[path.suffix]), model_writer=model, vocab_size=200, model_type="unigram",
                                       character_coverage=1.0, num_threads=1, minloglevel=2, hard_vocab_limit=False)
        protos.append(model.getvalue())
    vocab = {"</s>": 0, "<unk>": 1}
    for proto in protos:
        sp = spm.SentencePieceProcessor(model_proto=proto)
        for piece in map(sp.IdToPiece, range(sp.GetPieceSize())):
            vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    tok = SourceTargetTokenizer(protos[0], protos[1], vocab)
    de, en = texts[".de"][:50], texts[".en"][:50]
    for encode, sample, lines in ((tok.encode, tok.sample_encode, de), (tok.encode_target, tok.sample_encode_target, en)):
        ids = sample(lines, 0.1, seed=3)
        assert ids == sample(lines, 0.1, seed=3) and ids != encode(lines)
        assert tok.decode(ids) == tok.decode(encode(lines)) and tok.unk_id not in sum(ids, [])
