from xformer_cli.data import cut_batches, make_batches


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


def test_training_batches_cover_every_pair_within_the_budget_in_a_seeded_order():
    src, tgt = [4, 8, 2, 6, 3, 9, 5, 7], [5, 7, 2, 9, 3, 8, 4, 6]
    batches = make_batches(src, tgt, batch_tokens=20, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert len(b) == 1 or len(b) * max(max(src[i], tgt[i]) for i in b) <= 20
    assert make_batches(src, tgt, batch_tokens=20, seed=1, epoch=0) == batches
