from xformer_cli.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer


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
