"""A run's data: corpora from a recipe, weighted epochs, batches per rank, the tokenizer made once."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xformer_cli.config import CorpusConfig, TrainConfig
from xformer_cli.errors import ConfigError
from xformer_cli.model.config import preset
from xformer_cli.recipe import apply_flags, load_recipe
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.run_data import epoch_pairs, prepare_training_data
from xformer_cli.training.run_folder import RunFolder


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
                assert row[: row.index(config.eos_id)] == [tag, *untagged.corpora[0].pair(pair)[0].tolist()]
            else:
                assert tag not in row
        assert tag not in batch.tgt_in.flatten().tolist() and tag not in batch.tgt_out.flatten().tolist()
        rows += len(ids)
    assert rows == data.pairs


def test_a_tagged_corpus_needs_a_tokenizer_that_reserves_the_tag(two_corpora, trained_bundle_dir, tmp_path):
    from dataclasses import replace

    from xformer_cli.text.tokenizer import Tokenizer

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
    prepare_training_data(
        TrainConfig(src=str(src), tgt=str(tgt), cache_dir=str(tmp_path / "cache"), spm_sample=500, seed=3),
        run,
        Distributed(),
        preset("tiny", vocab_size=400),
        logs.append,
    )
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


def epoch_ids(data) -> list[tuple[list[int], list[int]]]:
    return [tuple(side.tolist() for side in c.pair(i)) for c in data.corpora for i in range(len(c))]


def test_without_subword_sampling_every_epoch_trains_on_the_plain_corpora(two_corpora, tokenizer, tmp_path):
    data, logs = prepare(tmp_path, two_corpora, tokenizer)
    assert TrainConfig().subword_alpha == 0.0 and not data.sampled
    before = sorted(p.name for p in (tmp_path / "cache" / "corpora").iterdir())
    assert all(data.for_epoch(epoch, Distributed(), logs.append) is data for epoch in range(3))
    assert sorted(p.name for p in (tmp_path / "cache" / "corpora").iterdir()) == before and not any("sampled" in line for line in logs)
    sampling, _ = prepare(tmp_path, two_corpora, tokenizer, subword_alpha=0.1)  # the plain entries are the same either way
    assert [c.folder for c in sampling.corpora] == [c.folder for c in data.corpora]


def test_each_epoch_samples_its_own_segmentation_of_the_same_text_and_repeats_it_exactly(two_corpora, tokenizer, tmp_path):
    data, logs = prepare(tmp_path, two_corpora, tokenizer, subword_alpha=0.1, seed=3)
    assert data.sampled
    plain = epoch_ids(data)
    one = data.for_epoch(0, Distributed(), logs.append)
    assert (
        logs[-1].startswith("epoch 1: sampled segmentation (subword_alpha 0.1), encoded in ") and "pieces per sentence (plain " in logs[-1]
    )
    two = data.for_epoch(1, Distributed(), logs.append)
    assert not any(c.folder.exists() for c in one.corpora)  # epoch 1's entries went as epoch 2 started
    first, second = epoch_ids(one), epoch_ids(two)
    assert len(first) == len(second) == len(plain) == 400  # nothing near the length limit: every pair fits in each epoch
    assert sum(a != p for a, p in zip(first, plain)) > 200 and sum(a != b for a, b in zip(first, second)) > 200
    for ids in (plain, first, second):  # each a segmentation of the same text
        assert tokenizer.decode([s for s, _ in ids]) == tokenizer.decode([s for s, _ in plain])
        assert tokenizer.decode([t for _, t in ids]) == tokenizer.decode([t for _, t in plain])
    assert one.mean_pieces > data.mean_pieces and two.mean_pieces > data.mean_pieces
    # The batches of an epoch come from its own lengths, and its pairs are its own.
    config = preset("tiny", vocab_size=400)
    batches = two.epoch_batches(batch_tokens=300, seed=3, epoch=1, dist=Distributed())
    assert sum(len(batches[k]) for k in range(len(batches))) == 400
    for k in range(len(batches)):
        ids = batches[k]
        assert len(ids) * int(max((two.src_lens[ids] + 1).max(), (two.tgt_lens[ids] + 1).max())) <= 300  # the budget, by epoch 2's lengths
        row = two.batch(ids, config).src[0].tolist()
        assert row[: row.index(config.eos_id)] == second[ids[0]][0]
    # Asked again (a resumed run), epoch 2 is found in the cache; made again elsewhere, it is the same.
    assert epoch_ids(data.for_epoch(1, Distributed(), logs.append)) == second and "found in the cache" in logs[-1]
    again, _ = prepare(tmp_path / "fresh", two_corpora, tokenizer, subword_alpha=0.1, seed=3)
    assert epoch_ids(again.for_epoch(1, Distributed(), logs.append)) == second and "encoded in" in logs[-1]
    assert epoch_ids(again.for_epoch(0, Distributed(), logs.append)) == first


def test_a_fresh_process_samples_the_same_segmentation(tiny_corpus, tokenizer, tmp_path):
    import hashlib
    import subprocess
    import sys

    tokenizer.save(tmp_path / "spm.model")
    script = (
        "import hashlib, sys\n"
        "from xformer_cli.config import TrainConfig\n"
        "from xformer_cli.model.config import preset\n"
        "from xformer_cli.training.distributed import Distributed\n"
        "from xformer_cli.training.run_folder import RunFolder\n"
        "from xformer_cli.training.run_data import prepare_training_data\n"
        "src, tgt, spm, cache, run = sys.argv[1:]\n"
        "cfg = TrainConfig(src=src, tgt=tgt, spm_model=spm, cache_dir=cache, subword_alpha=0.1, seed=3)\n"
        "run_folder = RunFolder(__import__('pathlib').Path(run), True)\n"
        "data = prepare_training_data(cfg, run_folder, Distributed(), preset('tiny', vocab_size=400), "
        "lambda _: None)\n"
        "c = data.for_epoch(1, Distributed(), lambda _: None).corpora[0]\n"
        "print(hashlib.sha256(c.src_tokens.tobytes() + c.tgt_tokens.tobytes()).hexdigest())\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            *map(str, tiny_corpus),
            str(tmp_path / "spm.model"),
            str(tmp_path / "cache-a"),
            str(tmp_path / "run-a"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    cfg = TrainConfig(
        src=str(tiny_corpus[0]),
        tgt=str(tiny_corpus[1]),
        spm_model=str(tmp_path / "spm.model"),
        cache_dir=str(tmp_path / "cache-b"),
        subword_alpha=0.1,
        seed=3,
    )
    run = RunFolder(tmp_path / "run-b", main=True)
    data = prepare_training_data(cfg, run, Distributed(), preset("tiny", vocab_size=400), lambda _: None)
    run.release()
    here = data.for_epoch(1, Distributed(), lambda _: None).corpora[0]
    assert done.stdout.strip() == hashlib.sha256(here.src_tokens.tobytes() + here.tgt_tokens.tobytes()).hexdigest()
    other = data.for_epoch(2, Distributed(), lambda _: None).corpora[0]  # and another epoch is another draw
    assert done.stdout.strip() != hashlib.sha256(other.src_tokens.tobytes() + other.tgt_tokens.tobytes()).hexdigest()


def test_a_tagged_corpus_keeps_its_tag_in_front_under_sampling(two_corpora, tokenizer, tmp_path):
    from dataclasses import replace

    big, small = two_corpora
    tag = tokenizer.tag_id
    data, _ = prepare(tmp_path, (replace(big, tag=True), small), tokenizer, subword_alpha=0.1)
    epoch = data.for_epoch(0, Distributed(), lambda _: None)
    n_big = len(epoch.corpora[0])
    sources = [s for s, _ in epoch_ids(epoch)]
    assert n_big == len(data.corpora[0]) and all(s[0] == tag and tag not in s[1:] for s in sources[:n_big])
    assert all(tag not in s for s in sources[n_big:]) and all(tag not in t for _, t in epoch_ids(epoch))
    plain_sources = [s for s, _ in epoch_ids(data)]
    assert sum(s != p for s, p in zip(sources, plain_sources)) > 150  # sampled behind the tag
    assert tokenizer.decode(sources) == tokenizer.decode(plain_sources)  # decoding drops the tag


def test_an_epoch_whose_sampled_segmentation_leaves_no_pair_is_a_run_error(two_corpora, tokenizer, tmp_path, monkeypatch):
    from xformer_cli.errors import RunError

    data, _ = prepare(tmp_path, two_corpora, tokenizer, subword_alpha=0.1)
    monkeypatch.setattr(
        data.tokenizer, "sample_encode", lambda texts, alpha, seed, threads=1: [[7] * 300 for _ in texts]
    )  # every source over-long
    with pytest.raises(RunError, match="no training pairs left after filtering epoch 2's sampled segmentation"):
        data.for_epoch(1, Distributed(), lambda _: None)


def test_subword_sampling_with_a_tokenizer_that_cannot_sample_is_refused_before_encoding(two_corpora, tiny_corpus, tmp_path):
    from xformer_cli.text.tokenizer import train_tokenizer

    lines = [line for path in tiny_corpus for line in path.read_text(encoding="utf-8").splitlines()]
    unigram = train_tokenizer(lines, 500, model_type="unigram")
    with pytest.raises(
        ConfigError,
        match="subword_alpha 0.1 samples BPE-dropout segmentations of one joint BPE SentencePiece model, "
        "as xformer trains; the tokenizer of this run folder is a unigram model: set subword_alpha = 0",
    ):
        prepare(tmp_path, two_corpora, unigram, subword_alpha=0.1)
    assert not (tmp_path / "cache" / "corpora").exists()
    data, _ = prepare(tmp_path, two_corpora, unigram)  # without sampling it trains as before
    assert not data.sampled
