import pytest

from xformer_cli.bundle import load_bundle
from xformer_cli.config import DecodeConfig
from xformer_cli.data import pad
from xformer_cli.search import beam_search, greedy_search, search
from xformer_cli.translator import Translator

SENTENCES = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?", "Das ist gut.", "Ich bin müde.", "Komm!"]


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    return Translator(load_bundle(trained_bundle_dir), "cpu")


def source_batch(translator, sentences):
    ids = translator.tokenizer.encode(sentences)
    return pad([s + [translator.model.config.eos_id] for s in ids], translator.model.config.pad_id)


def test_beam_of_one_equals_greedy(translator):
    src = source_batch(translator, SENTENCES)
    config = DecodeConfig(beam_size=1, max_len_a=1.5, max_len_b=5)
    greedy = greedy_search(translator.model, src, config)
    beam = beam_search(translator.model, src, config)
    assert [h[0].tokens for h in beam] == [h[0].tokens for h in greedy]
    for b, g in zip(beam, greedy):
        assert b[0].score == pytest.approx(g[0].score, abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_results_do_not_depend_on_batch_size_or_order(translator, beam_size):
    alone = [translator.translate([s], beam_size=beam_size)[0] for s in SENTENCES]
    together = translator.translate(SENTENCES, beam_size=beam_size)
    reversed_ = translator.translate(SENTENCES[::-1], beam_size=beam_size)[::-1]
    small_batches = translator.translate(SENTENCES, beam_size=beam_size, batch_tokens=12)
    pairs = translator.translate(SENTENCES, beam_size=beam_size, batch_size=2)
    assert together == alone == reversed_ == small_batches == pairs


@pytest.mark.parametrize("beam_size", [1, 4])
def test_workers_search_batches_in_parallel_with_the_same_results(trained_bundle_dir, beam_size):
    one, two = (Translator(load_bundle(trained_bundle_dir), "cpu", workers=w) for w in (1, 2))
    config = one.config(beam_size=beam_size, n_best=beam_size, batch_size=2)  # three batches
    ids = one.tokenizer.encode(SENTENCES)
    assert one.search_ids(ids, config) == two.search_ids(ids, config)
    assert two.translate(SENTENCES[::-1], beam_size=beam_size, batch_size=1) == one.translate(SENTENCES, beam_size=beam_size)[::-1]


def test_nbest_lists_are_distinct_and_start_with_the_one_best(translator):
    config = translator.config(beam_size=5, n_best=5)
    best = translator.translate(SENTENCES, beam_size=5)
    for sentence, one_best, nbest in zip(SENTENCES, best, translator.translate_nbest(SENTENCES, config)):
        assert len(nbest) == 5
        assert nbest[0].text == one_best
        raw = translator.search_ids(translator.tokenizer.encode([sentence]), config)[0]
        assert len({h.tokens for h in raw}) == len(raw) == 5  # distinct hypotheses
        assert [h.score for h in raw] == sorted((h.score for h in raw), reverse=True)


def test_output_never_has_special_ids_and_respects_the_length_cap(translator):
    c = translator.model.config
    src = source_batch(translator, SENTENCES + ["a " * 30])
    config = DecodeConfig(beam_size=3, max_len_a=0.5, max_len_b=2)
    src_lens = (src != c.pad_id).sum(1) - 1
    for decoder in (greedy_search, beam_search):
        for hyps, n in zip(decoder(translator.model, src, config), src_lens.tolist()):
            for h in hyps:
                assert not {c.pad_id, c.bos_id, c.unk_id, c.eos_id} & set(h.tokens)
                assert len(h.tokens) + 1 <= int(0.5 * n + 2)  # EOS forced at the cap


def test_golden_ids_and_scores(translator):
    """Fixed outputs of the seeded tiny model: any change to search or model math shows here."""
    src = source_batch(translator, SENTENCES[:2])
    greedy = greedy_search(translator.model, src, DecodeConfig(beam_size=1, max_len_a=1.5, max_len_b=5))
    beam = beam_search(translator.model, src, DecodeConfig(beam_size=3, max_len_a=1.5, max_len_b=5))
    got = [(h[0].tokens, round(h[0].score, 4)) for h in greedy + beam]
    assert got == GOLDEN


# greedy for both sentences, then beam 3 (which finds a better first translation than greedy)
GOLDEN = [((274, 461, 436, 448), -1.9898), ((279, 448), -1.5637), ((274, 461, 448), -1.9461), ((279, 448), -1.5637)]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_fast_paths_decode_like_the_plain_model(trained_bundle_dir, beam_size):
    """Translator.load's CPU settings (written-out attention, packed output projection) find the
    same hypotheses, with the same scores, as the fused model with F.linear."""
    fast = Translator.load(str(trained_bundle_dir), device="cpu")
    plain = load_bundle(trained_bundle_dir).model.eval()
    plain.set_fused_attention(True)
    src = source_batch(fast, SENTENCES)
    config = DecodeConfig(beam_size=beam_size, n_best=beam_size, max_len_a=1.5, max_len_b=5)
    got = search(fast.model, src, config, fast.project)
    want = search(plain, src, config)
    assert [[h.tokens for h in n] for n in got] == [[h.tokens for h in n] for n in want]
    for g, w in zip(got, want):
        assert [h.score for h in g] == pytest.approx([h.score for h in w], abs=1e-5)
