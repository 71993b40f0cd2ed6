import gzip

import numpy as np
import pytest

from xformer_cli.batching import FilterReport, ParallelReader, batch_bounds, cut_batches, filter_pairs, read_lines, read_parallel
from xformer_cli.errors import DataError
from xformer_cli.training.run_data import make_batches


def test_cut_batches_keep_order_and_both_limits():
    sizes = [5, 1, 9, 3, 3, 30, 2]
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    batches = cut_batches(order, sizes, batch_tokens=12, batch_size=3)
    assert [i for b in batches for i in b] == order  # consecutive runs of the order, each item once
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(sizes[i] for i in b) <= 12  # a lone item may exceed the budget
    assert batches[-1] == [5]  # size 30: alone
    assert [len(b) for b in batches] == [3, 2, 1, 1]  # 1,2,3 (row cap) | 3,5 | 9 (3 rows × 9 > 12) | 30
    assert cut_batches(order, sizes, batch_tokens=10**6) == [order]


def greedy_bounds(sizes, budget, batch_size=0):
    """The rule written plainly: add the next item while the batch still fits."""
    starts, rows, longest = [], 0, 0
    for i, size in enumerate(sizes):
        if rows and max(longest, size) * (rows + 1) <= budget and (not batch_size or rows < batch_size):
            rows, longest = rows + 1, max(longest, size)
        else:
            starts.append(i)
            rows, longest = 1, size
    return [*starts, len(sizes)]


@pytest.mark.parametrize("seed", range(5))
def test_batch_bounds_equal_the_greedy_rule(seed):
    rng = np.random.default_rng(seed)
    sizes = np.sort(rng.integers(1, 60, size=3000))
    for budget, batch_size in ((100, 0), (256, 7), (50, 0), (10_000, 0)):
        assert batch_bounds(sizes, budget, batch_size).tolist() == greedy_bounds(sizes.tolist(), budget, batch_size)
    with pytest.raises(ValueError):
        batch_bounds(np.array([3, 2]), 10)


def test_training_batches_cover_every_pair_within_the_budget_in_a_seeded_order():
    src, tgt = np.array([4, 8, 2, 6, 3, 9, 5, 7]), np.array([5, 7, 2, 9, 3, 8, 4, 6])
    batches = make_batches(src, tgt, batch_tokens=20, seed=1, epoch=0)
    rows = [batches[k].tolist() for k in range(len(batches))]
    assert sorted(i for b in rows for i in b) == list(range(8))
    for b in rows:
        assert len(b) == 1 or len(b) * max(max(src[i], tgt[i]) for i in b) <= 20
    again = make_batches(src, tgt, batch_tokens=20, seed=1, epoch=0)
    assert [again[k].tolist() for k in range(len(again))] == rows


def test_each_epoch_and_seed_has_its_own_batches():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, 300), rng.integers(1, 30, 300)

    def rows(seed, epoch):
        batches = make_batches(src, tgt, 200, seed, epoch)
        return [batches[k].tolist() for k in range(len(batches))]

    assert rows(1, 0) == rows(1, 0)
    assert rows(1, 1) != rows(1, 0) and rows(2, 0) != rows(1, 0)


def test_the_filter_drops_empty_then_over_long_then_mismatched_pairs():
    src = np.array([0, 3, 200, 2, 20, 6, 4])
    tgt = np.array([5, 0, 3, 7, 3, 2, 12])
    keep, report = filter_pairs(src, tgt, max_tokens=128, max_ratio=3.0)
    # empty, empty, over-long, 2:7 (longer side 7 > 5 and > 3 × 2), 20:3, 6:2 (6 = 3 × 2: kept), 4:12 (= 3 × 4: kept)
    assert keep.tolist() == [False, False, False, False, False, True, True]
    assert report == FilterReport(kept=2, empty=2, too_long=1, ratio=2)
    assert str(report) == "kept 2 pairs; dropped 2 empty, 1 over-long, 2 length-mismatched"
    assert filter_pairs(np.array([1]), np.array([5]), 128, 3.0)[0].tolist() == [True]  # 5 pieces or fewer: never a mismatch


def test_a_tag_in_front_of_the_source_counts_toward_the_length_limit_only():
    src = np.array([0, 10, 9, 2, 10])
    tgt = np.array([4, 9, 10, 7, 10])
    # Untagged: one empty, one mismatched (2:7), the 10-piece sides within the limit.
    assert filter_pairs(src, tgt, max_tokens=10, max_ratio=3.0)[1] == FilterReport(kept=3, empty=1, too_long=0, ratio=1)
    keep, report = filter_pairs(src, tgt, max_tokens=10, max_ratio=3.0, src_extra=1)
    # The tag makes the 10-piece sources 11 long; an empty source stays empty and 2:7 stays a
    # mismatch (the tag is not text), so only the limit moves.
    assert keep.tolist() == [False, False, True, False, False]
    assert report == FilterReport(kept=1, empty=1, too_long=2, ratio=1)


def test_a_stream_reads_plain_and_gzip_lines_stripped_in_chunks(tmp_path):
    (tmp_path / "a.de").write_text(" eins \nzwei\ndrei\n", encoding="utf-8")
    (tmp_path / "a.en.gz").write_bytes(gzip.compress("one\ntwo \nthree".encode()))  # no final newline
    reader = ParallelReader(tmp_path / "a.de", tmp_path / "a.en.gz")
    assert list(reader.chunks(2)) == [(["eins", "zwei"], ["one", "two"]), (["drei"], ["three"])]
    assert read_parallel(tmp_path / "a.de", tmp_path / "a.en.gz") == (["eins", "zwei", "drei"], ["one", "two", "three"])
    assert read_lines(tmp_path / "a.de") == ["eins", "zwei", "drei"]


def test_a_stream_names_the_bad_line_and_counts_every_line_when_counts_differ(tmp_path):
    (tmp_path / "a.de").write_bytes(b"gut\nauch gut\nkaputt \xff\n")
    (tmp_path / "a.en").write_text("fine\nfine too\nbroken\n")
    with pytest.raises(DataError, match=r"a\.de, line 3: not valid UTF-8"):
        list(ParallelReader(tmp_path / "a.de", tmp_path / "a.en").chunks(2))
    (tmp_path / "b.de").write_text("".join(f"{i}\n" for i in range(7)))
    with pytest.raises(DataError, match=r"line counts differ: 7 in .*b\.de, 3 in .*a\.en"):
        list(ParallelReader(tmp_path / "b.de", tmp_path / "a.en").chunks(2))
