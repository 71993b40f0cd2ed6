"""Batches: token-budget batch cutting, padding, and the Batch of training.

Training encodes a corpus once into a cache (`training/corpus_cache.py`) and cuts batches from
there (`training/run_data.py`); decoding cuts length-sorted batches of sentences the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from xformer_cli.text.tokenizer import PAD_ID


def batch_bounds(sizes: np.ndarray, batch_tokens: int, batch_size: int = 0) -> np.ndarray:
    """Where consecutive batches start along `sizes` (nondecreasing), with len(sizes) appended:
    each batch is as long as its padded size (rows × its largest size, its last) stays within
    `batch_tokens` and, unless 0, its rows within `batch_size`. An item larger than the budget
    gets a batch of its own. Shape (n,) -> (batches + 1,)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n = len(sizes)
    if n > 1 and bool((sizes[1:] < sizes[:-1]).any()):
        raise ValueError("batch_bounds needs sizes sorted in nondecreasing order")

    def fits(start: int, end: int) -> bool:
        return end - start == 1 or int(sizes[end - 1]) * (end - start) <= batch_tokens

    starts = []
    start = 0
    while start < n:
        # The batch grows while it fits, and whether it fits only gets worse as it grows (sizes
        # never fall), so its end is found by bisection below this upper bound.
        end = min(n, start + max(1, batch_tokens // max(int(sizes[start]), 1)), start + batch_size if batch_size else n)
        if not fits(start, end):
            good, bad = start + 1, end
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if fits(start, mid) else (good, mid)
            end = good
        starts.append(start)
        start = end
    return np.array([*starts, n], dtype=np.int64)


def cut_batches(order: Sequence[int], sizes: Sequence[int], batch_tokens: int, batch_size: int = 0) -> list[list[int]]:
    """`order` (indices into `sizes`, sorted by size) cut into consecutive batches by
    `batch_bounds`: padded size within `batch_tokens`, rows within `batch_size` unless 0."""
    order = list(order)
    bounds = batch_bounds(np.asarray(sizes, dtype=np.int64)[np.asarray(order, dtype=np.int64)], batch_tokens, batch_size)
    return [order[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def pad(seqs: Sequence[Sequence[int]], pad_id: int, bos: int | None = None, eos: int | None = None) -> Tensor:
    """Right-padded id matrix, each row starting with `bos` and ending with `eos` where given.
    `seqs` may be lists or numpy arrays. Shape (len(seqs), longest + the extras)."""
    first = 0 if bos is None else 1
    extra = first + (0 if eos is None else 1)
    longest = max(len(s) for s in seqs) + extra
    out = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    for row, s in enumerate(seqs):
        out[row, first : first + len(s)] = s
        if eos is not None:
            out[row, first + len(s)] = eos
    if bos is not None:
        out[:, 0] = bos
    return torch.from_numpy(out)


@dataclass
class Batch:
    """src (B, S) ending in EOS; tgt_in (B, T) starting with BOS; tgt_out (B, T) ending in EOS;
    all right-padded with `pad_id`. For guided alignment, `alignment` (B, T, S): the attention
    each decoder position should have over the source (`training/guided_alignment.py`)."""

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    pad_id: int = PAD_ID
    alignment: Tensor | None = None

    @property
    def n_tokens(self) -> int:
        return int((self.tgt_out != self.pad_id).sum())

    def to(self, device: torch.device) -> "Batch":
        """The batch on `device`; to a GPU through pinned memory, so the copy does not wait."""
        if device.type != "cuda":
            move = lambda t: t.to(device)  # noqa: E731
        else:
            move = lambda t: t.pin_memory().to(device, non_blocking=True)  # noqa: E731
        alignment = None if self.alignment is None else move(self.alignment)
        return Batch(move(self.src), move(self.tgt_in), move(self.tgt_out), self.pad_id, alignment)


def pad_with_eos(seqs: Sequence[Sequence[int]], eos_id: int, pad_id: int) -> Tensor:
    """Each sequence with EOS appended, right-padded: a source batch, or the targets the model
    must predict. Shape (len(seqs), longest + 1)."""
    return pad(seqs, pad_id, eos=eos_id)


def collate(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], pad_id: int, bos_id: int, eos_id: int) -> Batch:
    return Batch(
        src=pad(src_ids, pad_id, eos=eos_id),
        tgt_in=pad(tgt_ids, pad_id, bos=bos_id),
        tgt_out=pad(tgt_ids, pad_id, eos=eos_id),
        pad_id=pad_id,
    )
