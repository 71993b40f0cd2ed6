"""A run's data: corpora from a recipe, weighted epochs, batches per rank, the tokenizer made once."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xformer_cli.config import CorpusConfig, TrainConfig, apply_flags, load_recipe, preset
from xformer_cli.distributed import Distributed
from xformer_cli.errors import ConfigError
from xformer_cli.run_folder import RunFolder
from xformer_cli.training_data import epoch_pairs, prepare_training_data


def test_an_epoch_takes_round_weight_times_pairs_of_each_corpus():
    sizes, weights = [10, 7, 9, 5, 4], [1.0, 2.0, 0.5, 0.0, 1.5]
    starts = np.cumsum([0, *sizes])
    for epoch in range(3):
        ids = epoch_pairs(sizes, weights, seed=4, epoch=epoch)
        per_pair = Counter(ids.tolist())
        for c, (n, w) in enumerate(zip(sizes, weights)):
            mine = [i for i in ids.tolist() if starts[c] <= i < starts[c + 1]]
            assert len(mine) == int(w * n + 0.5), (c, epoch)
        assert all(per_pair[i] == 1 for i in range(0, 10))  # weight 1: once
        assert all(per_pair[i] == 2 for i in range(10, 17))  # weight 2: twice
        assert max(per_pair[i] for i in range(17, 26)) == 1  # weight 0.5: a half, without repeats
        assert all(per_pair[i] == 0 for i in range(26, 31))  # weight 0: never
        assert all(per_pair[i] in (1, 2) for i in range(31, 35))  # weight 1.5: once, and a half again
    halves = [frozenset(i for i in epoch_pairs(sizes, weights, 4, e).tolist() if 17 <= i < 26) for e in range(6)]
    assert len(set(halves)) > 1  # a fresh half each epoch
    assert np.array_equal(epoch_pairs(sizes, weights, 4, 1), epoch_pairs(sizes, weights, 4, 1))


def write_corpus(folder: Path, name: str, lines: list[tuple[str, str]]) -> CorpusConfig:
    (folder / f"{name}.de").write_text("".join(f"{s}\n" for s, _ in lines), encoding="utf-8")
    (folder / f"{name}.en").write_text("".join(f"{t}\n" for _, t in lines), encoding="utf-8")
    return CorpusConfig(str(folder / f"{name}.de"), str(folder / f"{name}.en"), name=name)


@pytest.fixture
def two_corpora(tiny_corpus, tmp_path):
    """The tiny corpus split in two: 'big' (300 pairs) and 'small' (100)."""
    pairs = list(zip(*(p.read_text(encoding="utf-8").splitlines() for p in tiny_corpus)))
    return write_corpus(tmp_path, "big", pairs[:300]), write_corpus(tmp_path, "small", pairs[300:])


def prepare(tmp_path, corpora, tokenizer, rank=0, world=1, **train):
    cfg = TrainConfig(corpora=corpora, cache_dir=str(tmp_path / "cache"), **train)
    run = RunFolder(tmp_path / "run", main=rank == 0)
    logs = []
    data = prepare_training_data(cfg, run, Distributed(rank, world), preset("tiny", vocab_size=400), logs.append, None, tokenizer)
    run.release()
    return data, logs


def test_the_batches_of_an_epoch_honour_the_corpus_weights(two_corpora, tokenizer, tmp_path):
    big, small = two_corpora
    from dataclasses import replace

    data, logs = prepare(tmp_path, (replace(big, weight=0.5), replace(small, weight=3.0)), tokenizer)
    n_big, n_small = (len(c) for c in data.corpora)
    assert n_big > 250 and n_small > 80  # what the filter kept
    assert any(line.startswith("training data big: kept") and "(weight 0.5)" in line for line in logs)
    for epoch in range(2):
        batches = data.epoch_batches(batch_tokens=300, seed=1, epoch=epoch, dist=Distributed())
        ids = np.concatenate([batches[k] for k in range(len(batches))])
        from_big = int((ids < n_big).sum())
        assert from_big == int(0.5 * n_big + 0.5) and len(ids) - from_big == 3 * n_small
        batch = data.batch(batches[0], preset("tiny", vocab_size=400))
        assert batch.src.shape[0] == len(batches[0])


def test_the_sources_of_a_tagged_corpus_start_with_the_tag_in_every_batch(two_corpora, tokenizer, tmp_path):
    from dataclasses import replace

    big, small = two_corpora
    tag = tokenizer.tag_id
    data, logs = prepare(tmp_path, (replace(big, tag=True), small), tokenizer)
    assert tag is not None and any(line.startswith("training data big: kept") and "tagged <bt>" in line for line in logs)
    assert [s.tagged for s in data.stats()] == [True, False]
    n_big = len(data.corpora[0])
    untagged, _ = prepare(tmp_path / "plain", (big, small), tokenizer)
    assert len(untagged.corpora[0]) == n_big  # no source near the length limit: the same pairs kept
    assert data.src_lens[:n_big].tolist() == (untagged.src_lens[:n_big] + 1).tolist()  # each one piece longer
    config = preset("tiny", vocab_size=400)
    batches = data.epoch_batches(batch_tokens=300, seed=1, epoch=0, dist=Distributed())
    rows = 0
    for k in range(len(batches)):
        ids = batches[k]
        batch = data.batch(ids, config)
        for pair, row in zip(ids.tolist(), batch.src.tolist()):
            if pair < n_big:
                assert row[:row.index(config.eos_id)] == [tag, *untagged.corpora[0].pair(pair)[0].tolist()]
            else:
                assert tag not in row
        assert tag not in batch.tgt_in.flatten().tolist() and tag not in batch.tgt_out.flatten().tolist()
        rows += len(ids)
    assert rows == data.pairs


def test_a_tagged_corpus_needs_a_tokenizer_that_reserves_the_tag(two_corpora, trained_bundle_dir, tmp_path):
    from dataclasses import replace

    from xformer_cli.tokenizer import Tokenizer

    big, small = two_corpora
    old = Tokenizer.load(trained_bundle_dir / "spm.model")  # made before the tag existed
    with pytest.raises(ConfigError, match="corpus 'small' has tag = true, but the tokenizer of this run folder reserves no <bt> piece"):
        prepare(tmp_path, (big, replace(small, tag=True)), old)
    assert not (tmp_path / "cache" / "corpora").exists()  # refused before encoding anything
    data, _ = prepare(tmp_path, (big, small), old)  # untagged corpora train with it as before
    assert [s.tagged for s in data.stats()] == [False, False]


def test_every_rank_gets_equally_many_batches_and_none_twice(two_corpora, tokenizer, tmp_path):
    data, _ = prepare(tmp_path, two_corpora, tokenizer)
    whole = data.epoch_batches(300, 1, 0, Distributed())
    shares = [data.epoch_batches(300, 1, 0, Distributed(rank, 3)) for rank in range(3)]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(whole) // 3
    seen = [tuple(s[k].tolist()) for s in shares for k in range(len(s))]
    assert len(seen) == len(set(seen)) == 3 * len(shares[0])
    assert set(seen) <= {tuple(whole[k].tolist()) for k in range(len(whole))}


def test_the_tokenizer_trained_on_a_corpus_is_kept_for_the_next_run(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    cfg = TrainConfig(src=str(src), tgt=str(tgt), cache_dir=str(tmp_path / "cache"), spm_sample=500, seed=2)
    protos, all_logs = [], []
    for name in ("one", "two"):
        run = RunFolder(tmp_path / name, main=True)
        logs = []
        data = prepare_training_data(cfg, run, Distributed(), preset("tiny", vocab_size=400), logs.append)
        run.release()
        protos.append(data.tokenizer.model_proto)
        all_logs.append(" | ".join(logs))
    assert "trained a 400-piece SentencePiece model" in all_logs[0] and "encoded" not in all_logs[0].split("trained")[0]
    assert "trained a" not in all_logs[1] and "trained on the same data before" in all_logs[1]
    assert "encoded before" in all_logs[1]
    assert protos[0] == protos[1]
    run = RunFolder(tmp_path / "three", main=True)
    logs = []
    prepare_training_data(TrainConfig(src=str(src), tgt=str(tgt), cache_dir=str(tmp_path / "cache"), spm_sample=500, seed=3), run,
                          Distributed(), preset("tiny", vocab_size=400), logs.append)
    assert any("trained a 400-piece" in line for line in logs)  # another seed, another sample: trained anew


def test_a_recipe_lists_corpora_with_weights_relative_to_its_folder(tmp_path):
    (tmp_path / "data").mkdir()
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[train]\n[[train.corpora]]\nname = "news"\nsrc = "data/news.de.gz"\ntgt = "data/news.en.gz"\nweight = 2\n'
        '[[train.corpora]]\nsrc = "/abs/europarl.de"\ntgt = "/abs/europarl.en"\ntag = true\n'
    )
    corpora = load_recipe(recipe).train.training_corpora()
    assert [(c.label, c.weight, c.tag) for c in corpora] == [("news", 2.0, False), ("europarl", 1.0, True)]
    assert corpora[0].src == str((tmp_path / "data" / "news.de.gz").resolve()) and corpora[1].tgt == "/abs/europarl.en"
    shorthand = apply_flags(load_recipe(recipe), train={"src": "a.de", "tgt": "a.en"}).train
    assert shorthand.training_corpora() == (CorpusConfig("a.de", "a.en"),)  # --src/--tgt replace the list


@pytest.mark.parametrize(
    "table, fragments",
    [
        ('src = "a"\ntgt = "b"\nweight = "lots"', ["weight in corpora[0] in [train] of", "must be a number", "'lots'"]),
        ('src = "a"', ["tgt missing in corpora[0] in [train] of"]),
        ('src = "a"\ntgt = "b"\nwieght = 2', ["unknown key 'wieght' in corpora[0] in [train] of"]),
        ('src = "a"\ntgt = "b"\nweight = -1', ["corpus weight must be 0 or more"]),
        ('src = "a"\ntgt = "b"\ntag = "yes"', ["tag in corpora[0] in [train] of", "must be true or false", "'yes'"]),
        ('src = "a"\ntgt = "b"\ntag = 1', ["tag in corpora[0] in [train] of", "must be true or false"]),
    ],
)
def test_a_bad_corpus_table_names_the_key_and_the_file(tmp_path, table, fragments):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[train]\n[[train.corpora]]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_recipe(recipe)
    for fragment in fragments:
        assert fragment in str(caught.value)
    if "missing" in fragments[0] or "unknown" in fragments[0]:
        assert str(recipe) in str(caught.value)


def test_corpora_and_src_together_or_all_weights_zero_are_refused():
    with pytest.raises(ConfigError, match="either as src/tgt or as"):
        TrainConfig(src="a", tgt="b", corpora=(CorpusConfig("c", "d"),))
    with pytest.raises(ConfigError, match="weight 0"):
        TrainConfig(corpora=(CorpusConfig("c", "d", weight=0),))
    with pytest.raises(ConfigError, match="share the name 'x'"):
        TrainConfig(corpora=(CorpusConfig("a", "b", name="x"), CorpusConfig("c", "d", name="x")))
