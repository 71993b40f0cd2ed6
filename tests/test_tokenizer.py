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
