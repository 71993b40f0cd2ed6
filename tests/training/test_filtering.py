"""The pair filter of training (training/filtering.py)."""

import numpy as np

from xformer_cli.training.filtering import FilterReport, filter_pairs


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
