"""The pair filter of training: which sentence pairs to train on, from their piece counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FilterReport:
    kept: int
    empty: int
    too_long: int
    ratio: int

    def __str__(self) -> str:
        return f"kept {self.kept} pairs; dropped {self.empty} empty, {self.too_long} over-long, {self.ratio} length-mismatched"

    def __add__(self, other: "FilterReport") -> "FilterReport":
        return FilterReport(self.kept + other.kept, self.empty + other.empty, self.too_long + other.too_long, self.ratio + other.ratio)


def filter_pairs(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, max_ratio: float, src_extra: int = 0
) -> tuple[np.ndarray, FilterReport]:
    """Which pairs to train on (a boolean mask), from their piece counts, and how many were
    dropped for which reason, checked in this order: an empty side; a side over `max_tokens`
    pieces; sides whose lengths differ by more than `max_ratio` times (when the longer has more
    than 5 pieces). `src_extra` pieces (a tag) go in front of every source: they count toward
    `max_tokens`, not toward emptiness or the ratio. Shapes: (n,), (n,) -> (n,)."""
    s, t = np.asarray(src_lens, dtype=np.int64), np.asarray(tgt_lens, dtype=np.int64)
    empty = (s == 0) | (t == 0)
    too_long = ~empty & ((s + src_extra > max_tokens) | (t > max_tokens))
    longer, shorter = np.maximum(s, t), np.minimum(s, t)
    ratio = ~empty & ~too_long & (longer > max_ratio * shorter) & (longer > 5)
    keep = ~(empty | too_long | ratio)
    return keep, FilterReport(int(keep.sum()), int(empty.sum()), int(too_long.sum()), int(ratio.sum()))
