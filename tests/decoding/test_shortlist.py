"""The lexical shortlist (decoding/shortlist.py) on the stored tiny trained bundle.

Ids are compared exactly only where the plain reference search, over the same candidates, decides
every step by at least MIN_MARGIN (see conftest.py)."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import MIN_MARGIN, SCORE_TOL, assert_one_line_error, reference_search
from typer.testing import CliRunner

from xformer_cli.batching import pad
from xformer_cli.bundles.bundle import load_bundle, save_bundle
from xformer_cli.bundles.shortlist import NONE, SHORTLIST_FILE, Shortlist, from_counts, load_shortlist, save_shortlist
from xformer_cli.cli.app import app
from xformer_cli.decoding.search import search
from xformer_cli.decoding.shortlist import restrict
from xformer_cli.decoding.translator import Translator
from xformer_cli.errors import ConfigError, ModelLoadError

SENTENCES = ["Ich habe Hunger.", "Tom ist hier.", "Wo ist der Bahnhof?", "Das ist gut.", "Ich bin müde.", "Danke!"]


class OnlyThese(torch.nn.Module):
    """A model whose logits outside `ids` are -inf: what a search over those candidates sees."""

    def __init__(self, model, ids) -> None:
        super().__init__()
        self.model, self.config = model, model.config
        self.mask = torch.full((model.config.vocab_size,), float("-inf"))
        self.mask[sorted(ids)] = 0.0

    def forward(self, src, tgt):
        return self.model(src, tgt) + self.mask


def candidates(shortlist: Shortlist, src_ids: list[int], eos_id: int) -> set[int]:
    """A sentence's candidates as the module's text defines them, computed plainly."""
    found = set(shortlist.frequent.tolist()) | {eos_id}
    for piece in src_ids:
        found |= {t for t in shortlist.table[piece].tolist() if t != NONE}
    return found


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    return Translator(load_bundle(trained_bundle_dir), "cpu")


@pytest.fixture(scope="module")
def narrow(translator) -> Shortlist:
    """A shortlist that bites: 40 fixed pieces for every sentence, and for each source piece the
    8 pieces its id is closest to (so sentences differ in their candidates)."""
    vocab = translator.model.config.vocab_size
    ids = torch.arange(vocab)
    table = ((ids.unsqueeze(1) + torch.arange(8) * 7) % vocab).long()  # (V, 8)
    table[::5, 4:] = NONE  # some rows shorter
    return Shortlist(table, torch.arange(4, 44).long())


def source_batch(translator, sentences):
    """The sentences' ids, each ending in EOS, padded into one (B, S) batch."""
    c = translator.model.config
    return pad([s + [c.eos_id] for s in translator.tokenizer.encode(sentences)], c.pad_id)


def restricted_search(translator, sentences, shortlist, config):
    c = translator.model.config
    src = source_batch(translator, sentences)
    restriction = restrict(shortlist, src, *translator.output, c.pad_id, c.eos_id)
    return search(translator.model, src, config, translator.project, restriction)


def test_from_counts_keeps_the_most_linked_pieces_and_the_most_frequent():
    links = np.array([[0, 5, 2, 5], [0, 0, 0, 0], [1, 0, 0, 3]])  # 3 source pieces, 4 target pieces
    shortlist = from_counts(links, frequency=np.array([9, 0, 4, 7]), per_piece=2, frequent=3)
    # row 0: pieces 1 and 3 tie at 5, the lower id first; row 1: never linked; row 2: piece 3 (3), then 0 (1)
    assert shortlist.table.tolist() == [[1, 3], [NONE, NONE], [3, 0]]
    assert shortlist.frequent.tolist() == [0, 2, 3]  # the three most frequent, by id; a piece never seen is not one


def test_each_sentence_gets_its_own_candidates_and_the_batch_their_union(translator, narrow):
    c = translator.model.config
    ids = translator.tokenizer.encode(SENTENCES[:3])
    src = source_batch(translator, SENTENCES[:3])
    restriction = restrict(narrow, src, *translator.output, c.pad_id, c.eos_id)
    want = [candidates(narrow, s + [c.eos_id], c.eos_id) for s in ids]
    assert set(restriction.columns.tolist()) == set().union(*want)
    assert restriction.columns.tolist() == sorted(restriction.columns.tolist())
    got = [set(restriction.columns[row].tolist()) for row in restriction.allowed]
    assert got == want
    assert torch.equal(restriction.weight, translator.output[0][restriction.columns])


def test_log_probs_are_the_models_renormalized_over_a_sentences_candidates(translator, narrow):
    c = translator.model.config
    src = source_batch(translator, SENTENCES[:2])
    restriction = restrict(narrow, src, *translator.output, c.pad_id, c.eos_id)
    hidden = torch.randn(4, c.d_model, generator=torch.Generator().manual_seed(0))
    sentences = torch.tensor([0, 1, 1, 0])
    got = restriction.log_probs(hidden, sentences)  # (4, V)
    full = translator.model.project(hidden)
    for row, sentence in enumerate(sentences.tolist()):
        keep = sorted(candidates(narrow, src[sentence][src[sentence] != c.pad_id].tolist(), c.eos_id))
        want = torch.full((c.vocab_size,), float("-inf"))
        want[keep] = full[row, keep].log_softmax(dim=-1)
        assert torch.isinf(got[row]).tolist() == torch.isinf(want).tolist()
        assert got[row, keep].tolist() == pytest.approx(want[keep].tolist(), abs=SCORE_TOL)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_search_over_a_shortlist_is_search_over_its_candidates(translator, narrow, beam_size):
    """Each sentence, alone and batched with the others, finds what the plain reference search
    finds when every piece outside its candidates is impossible."""
    config = translator.config(beam_size=beam_size, n_best=beam_size)
    c = translator.model.config
    batched = restricted_search(translator, SENTENCES, narrow, config)
    for sentence, got in zip(SENTENCES, batched):
        ids = translator.tokenizer.encode([sentence])[0]
        allowed = candidates(narrow, ids + [c.eos_id], c.eos_id)
        want, margin = reference_search(OnlyThese(translator.model, allowed), ids, config)
        assert margin >= MIN_MARGIN, f"{sentence!r}: a decision closer than {MIN_MARGIN} ({margin})"
        alone = restricted_search(translator, [sentence], narrow, config)[0]
        for hyps in (got, alone):
            assert [h.tokens for h in hyps] == [h.tokens for h in want]
            assert [h.score for h in hyps] == pytest.approx([h.score for h in want], abs=SCORE_TOL)
            assert all(set(h.tokens) <= allowed for h in hyps)


def test_the_shortlist_changes_what_a_narrow_one_leaves_out(translator, narrow):
    """The narrow shortlist lacks pieces the full search chooses: the output differs (so the tests
    above compare a search that bites)."""
    config = translator.config(beam_size=3)
    everything = Shortlist(narrow.table, torch.arange(translator.model.config.vocab_size))
    full = [h[0].tokens for h in restricted_search(translator, SENTENCES, everything, config)]
    # Exact ids: the two differ only in the projection's kernel, and these sentences decide by at
    # least MIN_MARGIN at beam 3 (test_search.py's test_fast_paths_decode_like_the_plain_model checks it).
    plain = [h[0].tokens for h in search(translator.model, source_batch(translator, SENTENCES), config, translator.project)]
    assert full == plain  # every piece a candidate: the search as without a shortlist
    assert [h[0].tokens for h in restricted_search(translator, SENTENCES, narrow, config)] != plain


def test_a_bundle_carries_its_shortlist_and_translation_uses_it_when_asked(trained_bundle_dir, narrow, tmp_path):
    folder = tmp_path / "with-shortlist"
    shutil.copytree(trained_bundle_dir, folder)
    save_shortlist(narrow, folder / SHORTLIST_FILE)
    bundle = load_bundle(folder)
    assert torch.equal(bundle.shortlist.table, narrow.table) and torch.equal(bundle.shortlist.frequent, narrow.frequent)
    assert load_bundle(save_bundle(bundle, tmp_path / "saved")).shortlist is not None
    plain = Translator.load(str(trained_bundle_dir), device="cpu").translate(SENTENCES)
    short = Translator.load(str(folder), device="cpu")
    assert short.translate(SENTENCES) == plain  # off unless asked for
    narrowed = short.translate(SENTENCES, shortlist=True)
    assert narrowed != plain
    assert short.translate(SENTENCES, shortlist=True, sample=True, seed=3) == short.translate(SENTENCES, sample=True, seed=3)
    runner = CliRunner()
    args = ["translate", "-m", str(folder)]
    with_it = runner.invoke(app, [*args, "--shortlist"], input="\n".join(SENTENCES) + "\n")
    without = runner.invoke(app, args, input="\n".join(SENTENCES) + "\n")
    assert with_it.exit_code == without.exit_code == 0
    assert with_it.stdout.splitlines() == narrowed and without.stdout.splitlines() == plain
    config = json.loads((folder / "config.json").read_text())
    config["decode"]["shortlist"] = True  # a model may ask for it by default
    (folder / "config.json").write_text(json.dumps(config))
    assert runner.invoke(app, args, input="\n".join(SENTENCES) + "\n").stdout.splitlines() == narrowed
    assert runner.invoke(app, [*args, "--no-shortlist"], input="\n".join(SENTENCES) + "\n").stdout.splitlines() == plain


def test_asking_for_a_shortlist_the_model_lacks_is_a_one_line_error(trained_bundle_dir, narrow, tmp_path):
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_bundle_dir), "--shortlist"], input="Danke!\n")
    assert_one_line_error(result, "no lexical shortlist", SHORTLIST_FILE)
    folder = tmp_path / "with-shortlist"
    shutil.copytree(trained_bundle_dir, folder)
    save_shortlist(narrow, folder / SHORTLIST_FILE)
    with pytest.raises(ConfigError, match="engine ctranslate2 scores every piece"):
        Translator.load(str(folder), device="cpu", engine="ctranslate2").config(shortlist=True)


def test_a_corrupt_or_unfitting_shortlist_is_a_one_line_error(trained_bundle_dir, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(trained_bundle_dir, folder)
    (folder / SHORTLIST_FILE).write_bytes(b"\x00\x01 not safetensors")
    result = CliRunner().invoke(app, ["translate", "-m", str(folder)], input="Danke!\n")  # read as the bundle loads, used or not
    assert_one_line_error(result, "corrupt shortlist")
    vocab = load_bundle(trained_bundle_dir).model.config.vocab_size
    save_shortlist(Shortlist(torch.zeros(vocab - 1, 2, dtype=torch.long), torch.arange(3)), folder / SHORTLIST_FILE)
    with pytest.raises(ModelLoadError, match="does not fit the model"):
        load_shortlist(folder / SHORTLIST_FILE, vocab, vocab)
    save_shortlist(Shortlist(torch.full((vocab, 2), vocab), torch.arange(3)), folder / SHORTLIST_FILE)
    with pytest.raises(ModelLoadError, match="outside its"):
        load_shortlist(folder / SHORTLIST_FILE, vocab, vocab)
