import numpy as np
import pytest

from xformer_cli.batching import batch_bounds, cut_batches
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
