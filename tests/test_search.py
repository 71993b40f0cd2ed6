"""Search on the stored tiny trained bundle (tests/fixtures/tiny-bundle).

Token ids are compared exactly, scores within SCORE_TOL. Exact ids are sound only where no rounding
difference (between CPUs, thread counts, batch shapes, kernels) can flip a decision of the search,
so each test that compares ids asserts, with the plain `reference_search`, that every decision on
its sentences beats the runner-up by at least MIN_MARGIN (see conftest.py).
"""

import functools

import pytest

from xformer_cli.bundle import load_bundle
from xformer_cli.config import DecodeConfig
from xformer_cli.data import pad
from xformer_cli.search import beam_search, greedy_search, search
from xformer_cli.translator import Translator

from conftest import MIN_MARGIN, SCORE_TOL, reference_search, step_margin

# Sentences on which the stored model decides clearly at beams 1, 3 and 4 (smallest margin 0.0012,
# for "Wo ist der Bahnhof?" at beam 4). "Komm!" was dropped: at beam 3 two of its candidates lie
# only 0.0009 apart.
SENTENCES = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?", "Das ist gut.", "Ich bin müde.", "Danke!"]


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    return Translator(load_bundle(trained_bundle_dir), "cpu")


@pytest.fixture(scope="module")
def reference(translator):
    """reference(beam_size, n_best) -> [(n best, margin)] of the plain reference search, per
    sentence of SENTENCES, with the bundle's length limits (cached: several tests share them)."""

    @functools.cache
    def run(beam_size: int, n_best: int = 1) -> list:
        config = translator.config(beam_size=beam_size, n_best=n_best)
        return [reference_search(translator.model, ids, config) for ids in translator.tokenizer.encode(SENTENCES)]

    return run


def assert_clear_decisions(results, sentences=SENTENCES) -> None:
    """Every decision the search takes on these sentences beats its runner-up by MIN_MARGIN, so
    rounding differences (below SCORE_TOL) cannot change the tokens it finds."""
    margins = [margin for _, margin in results]
    assert min(margins) >= MIN_MARGIN, f"decisions closer than {MIN_MARGIN}: {list(zip(sentences, margins))}"


def assert_same_hypotheses(got, want) -> None:
    """Equal n-best lists: the same token ids, scores within SCORE_TOL."""
    assert [[h.tokens for h in n] for n in got] == [[h.tokens for h in n] for n in want]
    for g, w in zip(got, want):
        assert [h.score for h in g] == pytest.approx([h.score for h in w], abs=SCORE_TOL)


def source_batch(translator, sentences):
    ids = translator.tokenizer.encode(sentences)
    return pad([s + [translator.model.config.eos_id] for s in ids], translator.model.config.pad_id)


def test_step_margin_is_the_closest_call_that_matters():
    eos = 3
    # Beam 2: EOS ranks 2nd of all and finishes (0.5 below the 1st, 0.1 above the 3rd); the 1st and
    # 3rd go on, 1.4 above the 4th. The 4th, 5th and 6th lie 0.01 apart, but all are left behind
    # whatever their order, so they do not count.
    ranked = [(-1.0, (5,)), (-1.5, (eos,)), (-1.6, (6,)), (-3.0, (7,)), (-3.01, (8,)), (-3.011, (9,))]
    assert step_margin(ranked, 2, eos) == pytest.approx(0.1)
    # Beam 1 (greedy): only the best against the runner-up counts.
    assert step_margin(ranked, 1, eos) == pytest.approx(0.5)
    assert step_margin([(-1.0, (5,)), (-1.2, (6,))], 1, eos) == pytest.approx(0.2)


@pytest.mark.parametrize("beam_size", [1, 3, 4])
def test_search_decides_like_a_plain_reference_and_clearly(translator, reference, beam_size):
    """The batched, cached search finds the n best of a search written plainly (one sentence, every
    prefix decoded in full); and every decision on SENTENCES is clear, which the other tests'
    exact comparisons of ids rely on."""
    config = translator.config(beam_size=beam_size, n_best=beam_size)
    got = search(translator.model, source_batch(translator, SENTENCES), config, translator.project)
    results = reference(beam_size, beam_size)
    assert_clear_decisions(results)
    assert_same_hypotheses(got, [hyps for hyps, _ in results])


def test_beam_of_one_equals_greedy(translator, reference):
    assert_clear_decisions(reference(1))
    src = source_batch(translator, SENTENCES)
    config = DecodeConfig(beam_size=1, max_len_a=1.5, max_len_b=5)
    assert_same_hypotheses(beam_search(translator.model, src, config), greedy_search(translator.model, src, config))


@pytest.mark.parametrize("beam_size", [1, 4])
def test_results_do_not_depend_on_batch_size_or_order(translator, reference, beam_size):
    """Exact on any CPU: padding is masked exactly (a masked position gets attention weight 0.0)
    and every sentence's rows are computed on their own, so a sentence's scores change with its
    batch only by the rounding of differently shaped kernels, far below its decisions' margins."""
    assert_clear_decisions(reference(beam_size))
    alone = [translator.translate([s], beam_size=beam_size)[0] for s in SENTENCES]
    together = translator.translate(SENTENCES, beam_size=beam_size)
    reversed_ = translator.translate(SENTENCES[::-1], beam_size=beam_size)[::-1]
    small_batches = translator.translate(SENTENCES, beam_size=beam_size, batch_tokens=12)
    pairs = translator.translate(SENTENCES, beam_size=beam_size, batch_size=2)
    assert together == alone == reversed_ == small_batches == pairs


@pytest.mark.parametrize("beam_size", [1, 4])
def test_workers_search_batches_in_parallel_with_the_same_results(trained_bundle_dir, reference, beam_size):
    """The same batches searched by one or two workers give the same n-best lists; other batches
    too (a worker per sentence), for the reasons of the test above."""
    assert_clear_decisions(reference(beam_size, beam_size))
    one, two = (Translator(load_bundle(trained_bundle_dir), "cpu", workers=w) for w in (1, 2))
    config = one.config(beam_size=beam_size, n_best=beam_size, batch_size=2)  # three batches
    ids = one.tokenizer.encode(SENTENCES)
    assert_same_hypotheses(two.search_ids(ids, config), one.search_ids(ids, config))
    assert two.translate(SENTENCES[::-1], beam_size=beam_size, batch_size=1) == one.translate(SENTENCES, beam_size=beam_size)[::-1]


def test_nbest_lists_are_distinct_and_start_with_the_one_best(translator):
    """True of any weights: the 1-best and the n-best come from the same batch (n_best only cuts
    the list), and beam search always ends with beam_size distinct hypotheses (distinct prefixes,
    each beam forced to EOS at the length cap at the latest)."""
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


def test_golden_ids_and_scores(translator, reference):
    """Fixed outputs of the stored bundle: any change to search or model math shows here. The
    weights are read from disk, so the golden values hold on every CPU: ids exactly (the margins
    of every greedy and beam decision are checked first), scores within SCORE_TOL."""
    for beam_size in (1, 3):
        assert_clear_decisions(reference(beam_size)[:2], SENTENCES[:2])
    src = source_batch(translator, SENTENCES[:2])
    greedy = greedy_search(translator.model, src, DecodeConfig(beam_size=1, max_len_a=1.5, max_len_b=5))
    beam = beam_search(translator.model, src, DecodeConfig(beam_size=3, max_len_a=1.5, max_len_b=5))
    best = [hyps[0] for hyps in greedy + beam]
    assert [h.tokens for h in best] == [tokens for tokens, _ in GOLDEN]
    assert [h.score for h in best] == pytest.approx([score for _, score in GOLDEN], abs=SCORE_TOL)


# Greedy for both sentences, then beam 3 (which finds a better first translation than greedy).
# After remaking the bundle (tests/fixtures/make_tiny_bundle.py), renew these from `best` above:
# [(h.tokens, round(h.score, 6)) for h in best].
GOLDEN = [((274, 461, 436, 448), -1.987949), ((279, 448), -1.563890), ((274, 461, 448), -1.950209), ((279, 448), -1.563890)]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_fast_paths_decode_like_the_plain_model(trained_bundle_dir, reference, beam_size):
    """Translator.load's CPU settings (written-out attention, packed output projection) find the
    same hypotheses, with the same scores up to rounding, as the fused model with F.linear."""
    assert_clear_decisions(reference(beam_size, beam_size))
    fast = Translator.load(str(trained_bundle_dir), device="cpu")
    plain = load_bundle(trained_bundle_dir).model.eval()
    plain.set_fused_attention(True)
    src = source_batch(fast, SENTENCES)
    config = DecodeConfig(beam_size=beam_size, n_best=beam_size, max_len_a=1.5, max_len_b=5)
    assert_same_hypotheses(search(fast.model, src, config, fast.project), search(plain, src, config))


def favouring(model, token: int, boost: float = 100.0):
    """The model's output projection with `token`'s logit raised by `boost`: it wins every step."""
    def project(hidden):
        logits = model.project(hidden)
        logits[:, token] += boost
        return logits

    return project


@pytest.mark.parametrize("decoder, beam_size", [(greedy_search, 1), (beam_search, 3)])
def test_search_never_emits_the_tag_piece_even_where_the_model_favours_it(tokenizer, decoder, beam_size):
    from conftest import make_bundle

    tag = tokenizer.tag_id
    untagged, tagged = make_bundle(tokenizer).model, make_bundle(tokenizer, tag_id=tag).model  # the same seeded weights
    c = tagged.config
    src = pad([s + [c.eos_id] for s in tokenizer.encode(SENTENCES)], c.pad_id)
    config = DecodeConfig(beam_size=beam_size, n_best=beam_size, max_len_a=1.0, max_len_b=5)
    free = decoder(untagged, src, config, favouring(untagged, tag))
    assert all(tag in h.tokens for hyps in free for h in hyps)  # without tag_id the boosted tag wins
    banned = decoder(tagged, src, config, favouring(tagged, tag))
    assert all(len(hyps) == beam_size for hyps in banned)
    assert not any(tag in h.tokens for hyps in banned for h in hyps)
